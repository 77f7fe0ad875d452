"""Human calibration: a reviewer scores a sample of items by hand, and the scorecard says how
far the judges agree with them.

* The sample (``sample_items``) is the items whose SHA-256 of ``variant`` and id is lowest: the
  same dataset gives every reviewer the same items, whatever order they were scored in.
* A reviewer's scores are kept per (reviewer, variant, item, dimension); a later score of the
  same cell replaces the earlier one (``latest``).
* ``calibrate`` compares, per dimension (per variant), the judges' item score (the mean of the
  cell's judges, what the scorecard reports) with each reviewer's: Krippendorff's alpha,
  interval level, with the judges as one rater and each reviewer as another, over the cells a
  reviewer scored, and the mean absolute difference. A dimension is flagged when alpha is below
  ``DISAGREE_BELOW`` (Krippendorff's own lowest bound for tentative conclusions) with at least
  ``MIN_HUMAN_SCORES`` human scores, or when the two never agree on a score with no spread to
  tell alpha from (alpha undefined, difference at least 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.evaluation.scorecard import _id_key, _round, agreement

SAMPLE_SIZE = 10
DISAGREE_BELOW = 0.667
MIN_HUMAN_SCORES = 5
NOTE_MAX_CHARS = 500

ItemKey = tuple[str, str]  # (variant, item id)


@dataclass(frozen=True)
class ScoredCell:
    """One cell a reviewer scores on the page (who scores is the one submitting)."""

    variant: str
    item: str
    dimension: str
    score: int
    note: str = ""


@dataclass(frozen=True)
class HumanScore:
    reviewer: str
    variant: str
    item: str
    dimension: str
    score: int
    note: str = ""


def _rank(key: ItemKey) -> str:
    variant, item = key
    return hashlib.sha256(f"{variant}\x00{item}".encode()).hexdigest()


def sample_items(keys: Iterable[ItemKey], size: int = SAMPLE_SIZE) -> list[ItemKey]:
    """``size`` items (all when fewer) chosen by a stable hash of their variant and id, shown
    in the scorecard's order (variant, then id)."""
    chosen = sorted(set(keys), key=_rank)[:size]
    return sorted(chosen, key=lambda k: (k[0], _id_key(k[1])))


def latest(scores: Iterable[HumanScore]) -> dict[tuple[str, str, str, str], HumanScore]:
    """The last score of each (reviewer, variant, item, dimension), ``scores`` being in the
    order they were given."""
    kept: dict[tuple[str, str, str, str], HumanScore] = {}
    for s in scores:
        kept[(s.reviewer, s.variant, s.item, s.dimension)] = s
    return kept


def human_agreement(
    judged: Mapping[str, float | None], human: Mapping[str, Mapping[str, int]]
) -> dict[str, Any]:
    """The agreement of the judges' item scores ``judged`` {item: score} with the reviewers'
    ``human`` {reviewer: {item: score}} on one dimension."""
    reviewers = sorted(human)
    items = sorted({i for scores in human.values() for i in scores}, key=_id_key)
    human_n = sum(len(scores) for scores in human.values())
    cells: list[list[float | None]] = []
    diffs: list[float] = []
    for item in items:
        judge = judged.get(item)
        row = [human[r].get(item) for r in reviewers]
        if judge is None:
            continue
        cells.append([judge, *row])
        diffs.extend(abs(judge - h) for h in row if h is not None)
    alpha = agreement(cells) if cells else None
    mad = sum(diffs) / len(diffs) if diffs else None
    enough = human_n >= MIN_HUMAN_SCORES
    if alpha is not None:
        disagrees = enough and alpha < DISAGREE_BELOW
    else:
        disagrees = enough and mad is not None and mad >= 1
    return {
        "human_n": human_n,
        "paired": len(diffs),
        "reviewers": reviewers,
        "alpha": _round(alpha),
        "mean_abs_diff": _round(mad),
        "disagrees": disagrees,
        "threshold": DISAGREE_BELOW,
        "min_scores": MIN_HUMAN_SCORES,
    }


def calibrate(
    card: dict[str, Any], scores: Iterable[HumanScore]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (variant, dimension) of the scorecard's rows, the judges' agreement with the
    reviewers' latest scores."""
    human: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for s in latest(scores).values():
        human.setdefault((s.variant, s.dimension), {}).setdefault(s.reviewer, {})[s.item] = s.score
    result = {}
    for row in card.get("dimensions", []):
        variant, name = str(row.get("variant") or ""), str(row["name"])
        judged = {
            str(item["id"]): item["scores"].get(name)
            for item in card.get("items", [])
            if str(item.get("variant") or "") == variant
        }
        result[(variant, name)] = human_agreement(judged, human.get((variant, name), {}))
    return result
