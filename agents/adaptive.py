"""Adaptive fan-out: scouts first, then more agents where they found more, until it converges.

With the option ``adaptive`` a codebase audit does not start every planned agent at once. Its
planner groups (the folders) are each sampled first: a seeded fifth of a folder's chunks (at
least two), read through every lens, are its *scouts*. When every agent of a group has finished,
the harness decides the group's next *wave* from what the last wave found:

- nothing new found → the group stops (scouts that found nothing leave the rest of the folder
  unread: sampled, not read in full, and the decision says so);
- most of what the wave found repeats what the group already knew (``REDUNDANCY_STOP``, measured
  with the aggregation's own text similarity) → the group stops: more agents would read more
  copies of the same code (generated, vendored or copy-pasted files);
- otherwise the next wave is the last one's size times a growth that rises with the new findings'
  severity-weighted density (``GROWTH_MAX`` at most), never more than the group has left, the
  run's ``max_agents`` allows, or the budget left pays for at the run's average agent cost.

Only the decomposition into interchangeable chunks (``domain``) is adaptive: a persona reads a
whole document (no sample of it stands for the others), an ensemble's voters are redundant on
purpose (voting needs them all), a synthesis depends on every reader it was planned with, and an
evaluation must score every item. The same snapshot and options always scout the same chunks.
This module is pure (no database): ``runs.actions.adaptive`` applies its decisions.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from agents.aggregation.records import SEVERITY_RANK
from agents.aggregation.similarity import TfidfEmbedder

OPTION = "adaptive"
# The decompositions a run may be adaptive over (see the module doc for why only this one).
ADAPTIVE_DECOMPOSITIONS = frozenset({"domain"})
# A group's scouts: this share of its chunks, at least ``SCOUT_MIN`` (or all it has). Tuned on
# the bench's first layout: one scout per folder of ten missed a dense folder whenever it drew
# one of its clean files (one folder in five at 80 % density); two miss one in twenty-five.
SCOUT_SHARE = 0.2
SCOUT_MIN = 2
# A wave whose new findings repeat known ones at least this often ends its group.
REDUNDANCY_STOP = 0.6
# Two findings are the same thing said again when their rule matches (or either has none) and
# their words (the quoted code, else title and detail; never the path) are at least this
# similar: copies of one file repeat, the same rule at different code does not.
SAME_FINDING = 0.9
# The next wave is at most this many times the last one plus one.
GROWTH_MAX = 3.0
# Severity-weighted new findings per agent that earn one more wave's worth of agents.
DENSITY_UNIT = 1.0

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def parse_flag(value: Any) -> bool | None:
    """The option's value as a bool; None for anything but a clear yes or no (true/false,
    1/0, or their words: "true", "on", "no"…)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def is_adaptive(decomposition: str, options: dict[str, Any]) -> bool:
    return decomposition in ADAPTIVE_DECOMPOSITIONS and bool(options.get(OPTION))


@dataclass(frozen=True)
class Unit:
    """One chunk of a group, with its specs (one per lens): the unit a wave adds."""

    scope_label: str
    keys: tuple[str, ...]


def units_by_group(specs: Sequence[Any]) -> dict[str, list[Unit]]:
    """The plan's specs (``TaskSpec``-like: group, scope_label, key, scope) as each group's
    chunks, in plan order."""
    grouped: dict[str, dict[str, list[Any]]] = defaultdict(dict)
    for spec in specs:
        scope = repr(sorted(spec.scope.get("files", [])))
        grouped[spec.group].setdefault(scope, []).append(spec)
    return {
        group: [Unit(same[0].scope_label, tuple(s.key for s in same)) for same in chunks.values()]
        for group, chunks in grouped.items()
    }


def scout_units(group: str, units: list[Unit], digest: str) -> list[Unit]:
    """A seeded sample of the group's chunks (``SCOUT_SHARE``, ``SCOUT_MIN``): the same snapshot
    always scouts the same chunks, and the sample is not biased to the first file by name."""
    count = min(len(units), max(SCOUT_MIN, math.ceil(len(units) * SCOUT_SHARE)))
    seed = int(hashlib.sha256(f"{digest}:scout:{group}".encode()).hexdigest()[:16], 16)
    picked = set(random.Random(seed).sample(range(len(units)), count))
    return [u for i, u in enumerate(units) if i in picked]


def scout_keys(specs: Sequence[Any], digest: str) -> set[str]:
    """The keys of the scouts' specs, every group's."""
    return {
        key
        for group, units in units_by_group(specs).items()
        for unit in scout_units(group, units, digest)
        for key in unit.keys
    }


@dataclass(frozen=True)
class Seen:
    """One finding as a decision weighs it."""

    task_id: int
    rule: str
    severity: str
    text: str


def redundant(known: list[Seen], new: list[Seen]) -> list[bool]:
    """For each new finding, whether it repeats a known one or one an earlier agent of the same
    wave reported: same rule and text at least ``SAME_FINDING`` similar (TF-IDF over character
    n-grams, the dedup stage's offline embedder)."""
    if not new:
        return []
    rows = [*known, *new]
    vectors = TfidfEmbedder().embed([r.text for r in rows])
    product: Any = vectors @ vectors.T
    sims = product.toarray() if sparse.issparse(product) else np.asarray(product)
    out: list[bool] = []
    for i in range(len(known), len(rows)):
        row = rows[i]
        out.append(
            any(
                sims[i, j] >= SAME_FINDING - 1e-9
                and (not row.rule or not rows[j].rule or row.rule == rows[j].rule)
                and (j < len(known) or rows[j].task_id != row.task_id)
                for j in range(i)
            )
        )
    return out


@dataclass(frozen=True)
class Decision:
    """What a group gets next: ``units`` more chunks (0 = the group stops), and why."""

    units: int
    reason: str
    found: int  # new findings of the last wave
    weight: int  # their severity weight
    repeated: int  # findings of the last wave that repeated known ones


def _severity_words(new: list[Seen]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for seen in new:
        counts[seen.severity] += 1
    order = sorted(counts, key=lambda s: -SEVERITY_RANK.get(s, 0))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def decide(
    *,
    where: str,
    wave: int,
    last_agents: int,
    last_units: int,
    known: list[Seen],
    new: list[Seen],
    units_left: int,
    lenses: int,
    agents_allowed: int,
    agents_affordable: int | None,
) -> Decision:
    """The next wave of one group whose agents have all finished (``wave`` 0: its scouts).
    ``agents_allowed``: agents the run's ``max_agents`` leaves; ``agents_affordable``: those the
    budget left pays for at the average agent's cost (None: no estimate yet, or no ceiling).
    ``where``: the group as the reason names it ("web/")."""
    flags = redundant(known, new)
    repeated = sum(flags)
    novel = [s for s, again in zip(new, flags, strict=True) if not again]
    weight = sum(SEVERITY_RANK.get(s.severity, 0) + 1 for s in novel)
    who = "scouts" if wave == 0 else f"the last {last_agents} agents"
    facts = dict(found=len(novel), weight=weight, repeated=repeated)
    if not novel:
        if wave == 0:
            why = (
                f"scouts read {last_units} of {last_units + units_left} chunks and found "
                f"nothing: the other {units_left} stay unread (sampled, not read in full)"
            )
        elif new:
            why = f"{who} only repeated known findings ({repeated} of {len(new)})"
        else:
            why = f"{who} found nothing new"
        return Decision(0, f"no more agents in {where}: {why}", **facts)
    if new and repeated / len(new) >= REDUNDANCY_STOP:
        share = round(100 * repeated / len(new))
        return Decision(
            0,
            f"no more agents in {where}: {share}% of what {who} found repeats known findings "
            f"({repeated} of {len(new)}); {units_left} chunks left unread",
            **facts,
        )
    found = f"{who} found {len(novel)} new ({_severity_words(novel)})"
    growth = 1 + min(GROWTH_MAX, weight / max(1, last_agents) / DENSITY_UNIT)
    wanted = min(units_left, max(1, math.ceil(last_units * growth)))
    capped = min(wanted, agents_allowed // max(1, lenses))
    limit = "max agents"
    if agents_affordable is not None and agents_affordable // max(1, lenses) < capped:
        capped = agents_affordable // max(1, lenses)
        limit = "the budget left"
    if capped <= 0:
        return Decision(0, f"no more agents in {where}: {limit} reached; {found}", **facts)
    bounded = f" (bounded by {limit})" if capped < wanted else ""
    agents = capped * lenses
    return Decision(capped, f"{agents} more agents in {where}{bounded}: {found}", **facts)
