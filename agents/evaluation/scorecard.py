"""The scorecard: what an evaluation's judges said, aggregated.

Input: one ``Judgement`` per judge agent that answered (variant, item id, dimension, rater,
score or None, rationale). ``rater`` names who scored: ``judge-0``, ``judge-1``… for the judge
agents of a cell; a human's scores can be added as raters named ``human:<user>`` — they are kept
apart (``HUMAN_PREFIX``) and never count in the judges' means.

Output (``build_scorecard``), JSON-ready:

* ``dimensions``: one row per dimension (per variant in an A/B run): ``name``, ``mean`` (of the
  items' scores, an item's score being the mean of its judges'), ``ci_low``/``ci_high`` (95%
  percentile bootstrap over items, 2,000 resamples, seeded: the same scores give the same
  interval), ``n`` (items scored), ``agreement`` (Krippendorff's alpha, interval level, between
  the judges of each cell; None with one judge per cell or no variation), ``abstained``,
  ``distribution`` (items per rounded score 1-5), and ``variant`` ("" or "a"/"b").
* ``items``: ``id``, ``variant``, ``scores`` {dimension: score or None}, ``rationale``
  {dimension: the first judge's rationale}, ``judges`` {dimension: [each judge's score]}.
* ``worst``: {dimension (``dim`` or ``dim/b``): the ids of the lowest-scored items}.
* ``comparison`` (A/B only): per dimension and ``overall``, the items paired by id:
  ``wins_a``, ``wins_b``, ``ties``, ``win_rate_b`` ((wins_b + ties/2) / n), ``mean_delta``
  (b - a), ``p_value`` (two-sided exact sign test on the non-tied pairs) and ``p_wilcoxon``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np
from scipy import stats

from agents.evaluation.rubric import SCALE

HUMAN_PREFIX = "human:"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20_22
WORST_ITEMS = 5
AGREEMENT_METRIC = "krippendorff_alpha_interval"


@dataclass(frozen=True)
class Judgement:
    variant: str
    item: str
    dimension: str
    rater: str
    score: int | None
    rationale: str = ""


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def bootstrap_ci(values: list[float]) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean (seeded, so reproducible)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, len(data), size=(BOOTSTRAP_RESAMPLES, len(data)))
    means = data[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def agreement(cells: Sequence[Sequence[float | None]]) -> float | None:
    """Krippendorff's alpha (interval) over the cells' judges; None when it cannot be told
    (fewer than two judges in every cell, or no variation at all)."""
    width = max((len(c) for c in cells), default=0)
    if width < 2:
        return None
    matrix = np.full((width, len(cells)), np.nan)
    for column, cell in enumerate(cells):
        for row, score in enumerate(cell):
            if score is not None:
                matrix[row, column] = score
    pairable = np.sum(np.sum(~np.isnan(matrix), axis=0) >= 2)
    values = matrix[~np.isnan(matrix)]
    if pairable == 0 or len(set(values.tolist())) < 2:
        return None
    try:
        return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval"))
    except (ValueError, ZeroDivisionError):
        return None


def sign_test(wins_a: int, wins_b: int) -> float:
    """Two-sided exact sign test (binomial, p = 0.5) on the non-tied pairs; 1.0 with none."""
    total = wins_a + wins_b
    if total == 0:
        return 1.0
    return float(stats.binomtest(wins_b, total, 0.5, alternative="two-sided").pvalue)


def _wilcoxon(deltas: list[float]) -> float | None:
    nonzero = [d for d in deltas if d != 0]
    if not nonzero:
        return None
    try:
        return float(stats.wilcoxon(deltas, zero_method="wilcox").pvalue)
    except ValueError:
        return None


def _mean(scores: list[int | None]) -> float | None:
    given = [s for s in scores if s is not None]
    return sum(given) / len(given) if given else None


def build_scorecard(
    judgements: list[Judgement], dimensions: list[str], *, judges_per_cell: int = 1
) -> dict[str, Any]:
    judges = [j for j in judgements if not j.rater.startswith(HUMAN_PREFIX)]
    # (variant, item, dimension) -> [(rater, score, rationale)], raters in a stable order
    cells: dict[tuple[str, str, str], list[Judgement]] = defaultdict(list)
    for j in sorted(judges, key=lambda j: (j.variant, j.item, j.dimension, j.rater)):
        cells[(j.variant, j.item, j.dimension)].append(j)
    variants = sorted({j.variant for j in judges}) or [""]
    item_ids = sorted({(j.variant, j.item) for j in judges}, key=lambda k: (k[0], _id_key(k[1])))
    item_score = {key: _mean([j.score for j in cell]) for key, cell in cells.items()}

    rows, worst = [], {}
    for variant in variants:
        for name in dimensions:
            keys = [k for k in cells if k[0] == variant and k[2] == name]
            scored = sorted(
                ((k[1], item_score[k]) for k in keys if item_score[k] is not None),
                key=lambda p: (p[1], _id_key(p[0])),
            )
            values = [v for _, v in scored if v is not None]
            mean = sum(values) / len(values) if values else None
            low, high = bootstrap_ci(values) if values else (None, None)
            distribution = {str(s): 0 for s in range(SCALE[0], SCALE[1] + 1)}
            for v in values:
                distribution[str(math.floor(v + 0.5))] += 1
            rows.append(
                {
                    "name": name,
                    "variant": variant,
                    "mean": _round(mean),
                    "ci_low": _round(low),
                    "ci_high": _round(high),
                    "n": len(values),
                    "agreement": _round(agreement([[j.score for j in cells[k]] for k in keys])),
                    "abstained": len(keys) - len(values),
                    "distribution": distribution,
                }
            )
            label = f"{name}/{variant}" if variant else name
            worst[label] = [item for item, _ in scored[:WORST_ITEMS]]

    items = []
    for variant, item in item_ids:
        entry: dict[str, Any] = {"id": item, "variant": variant, "scores": {}, "rationale": {}}
        entry["judges"] = {}
        for name in dimensions:
            cell = cells.get((variant, item, name), [])
            entry["scores"][name] = _round(item_score.get((variant, item, name)))
            entry["rationale"][name] = cell[0].rationale if cell else ""
            entry["judges"][name] = [j.score for j in cell]
        items.append(entry)

    card: dict[str, Any] = {
        "dimensions": rows,
        "items": items,
        "worst": worst,
        "judges_per_cell": judges_per_cell,
        "agreement_metric": AGREEMENT_METRIC,
        "scale": list(SCALE),
        "variants": [v for v in variants if v],
    }
    if set(variants) == {"a", "b"}:
        card["comparison"] = compare(item_score, dimensions)
    return card


def _id_key(item: str) -> tuple[int, int | str]:
    # Numeric ids sort as numbers (2 before 10), others as text.
    return (0, int(item)) if item.isdigit() else (1, item)


def _paired(deltas: list[float], name: str) -> dict[str, Any]:
    wins_b = sum(d > 0 for d in deltas)
    wins_a = sum(d < 0 for d in deltas)
    ties = len(deltas) - wins_a - wins_b
    n = len(deltas)
    return {
        "name": name,
        "n": n,
        "wins_a": wins_a,
        "wins_b": wins_b,
        "ties": ties,
        "win_rate_b": _round((wins_b + ties / 2) / n) if n else None,
        "mean_delta": _round(sum(deltas) / n) if n else None,
        "p_value": _round(sign_test(wins_a, wins_b), 6),
        "p_wilcoxon": _round(_wilcoxon(deltas), 6),
        "test": "sign",
    }


def compare(
    item_score: dict[tuple[str, str, str], float | None], dimensions: list[str]
) -> list[dict[str, Any]]:
    """A/B per dimension and overall (an item's overall score: the mean over the dimensions
    both variants were scored on)."""
    ids = sorted({k[1] for k in item_score}, key=_id_key)
    rows = []
    overall: list[float] = []
    per_item: dict[str, list[float]] = defaultdict(list)
    for name in dimensions:
        deltas = []
        for item in ids:
            a, b = item_score.get(("a", item, name)), item_score.get(("b", item, name))
            if a is None or b is None:
                continue
            deltas.append(b - a)
            per_item[item].append(b - a)
        rows.append(_paired(deltas, name))
    overall = [sum(d) / len(d) for item in ids if (d := per_item.get(item))]
    rows.append(_paired(overall, "overall"))
    return rows


def csv_rows(card: dict[str, Any]) -> list[list[Any]]:
    """The scorecard's items as CSV rows (header first): one row per item, a column per
    dimension's score and one per rationale."""
    dims = list(dict.fromkeys(row["name"] for row in card.get("dimensions", [])))
    header = ["id", "variant", *dims, *(f"{d}_rationale" for d in dims)]
    rows: list[list[Any]] = [header]
    for item in card.get("items", []):
        scores = [item["scores"].get(d) for d in dims]
        reasons = [item["rationale"].get(d, "") for d in dims]
        rows.append([item["id"], item.get("variant", ""), *scores, *reasons])
    return rows
