"""The winner of a judged ensemble and how far its judges agree.

Pairwise: each judge's vote counts once, and a pair's two orders are two votes, so a judge who
always prefers the candidate shown first gives each side one vote and the pair is a draw: the
position bias cancels. A pair goes to the candidate with more of its votes; Copeland score =
pairs won + half the pairs drawn; ties on it go to the most votes won (a Borda count over the
pairs), then to the lower voter number. Agreement: the share of pairs whose two orders gave the
same outcome, and Krippendorff's alpha (nominal) with the two orders as two raters.

Rubric: the winner has the highest mean score (ties: the lower voter number); one judge per
candidate leaves no agreement to measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np


@dataclass(frozen=True)
class PairVote:
    """One pairwise judge: it saw ``a`` as A and ``b`` as B; ``winner`` a voter index or None
    for a tie."""

    a: int
    b: int
    winner: int | None
    judge: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RubricVote:
    candidate: int
    score: int
    judge: str = ""
    reason: str = ""


def _outcome(vote: PairVote) -> int:
    """The vote as a nominal value of its unordered pair: 0 the lower index won, 1 the higher,
    2 a tie, whatever the order shown."""
    if vote.winner is None:
        return 2
    return 0 if vote.winner == min(vote.a, vote.b) else 1


def pairwise_tally(candidates: list[int], votes: list[PairVote]) -> dict[str, Any]:
    wins = dict.fromkeys(candidates, 0)  # votes won (Borda over pairs)
    copeland = dict.fromkeys(candidates, 0.0)
    by_pair: dict[tuple[int, int], list[PairVote]] = {}
    for vote in votes:
        by_pair.setdefault((min(vote.a, vote.b), max(vote.a, vote.b)), []).append(vote)
        if vote.winner is not None:
            wins[vote.winner] = wins.get(vote.winner, 0) + 1
    pairs: list[dict[str, Any]] = []
    for (i, j), pair_votes in sorted(by_pair.items()):
        won_i = sum(v.winner == i for v in pair_votes)
        won_j = sum(v.winner == j for v in pair_votes)
        if won_i > won_j:
            copeland[i] = copeland.get(i, 0.0) + 1
            result: int | None = i
        elif won_j > won_i:
            copeland[j] = copeland.get(j, 0.0) + 1
            result = j
        else:
            copeland[i] = copeland.get(i, 0.0) + 0.5
            copeland[j] = copeland.get(j, 0.0) + 0.5
            result = None
        outcomes = {_outcome(v) for v in pair_votes}
        both = {(v.a, v.b) for v in pair_votes} == {(i, j), (j, i)}
        pairs.append(
            {
                "pair": [i, j],
                "votes": {str(i): won_i, str(j): won_j},
                "winner": result,
                "orders_agree": both and len(outcomes) == 1,
                "both_orders": both,
            }
        )
    judged = [p for p in pairs if p["both_orders"]]
    agreeing = sum(bool(p["orders_agree"]) for p in judged)
    ranking = sorted(candidates, key=lambda c: (-copeland.get(c, 0.0), -wins.get(c, 0), c))
    return {
        "method": "copeland",
        "winner": ranking[0] if votes and ranking else None,
        "ranking": [
            {"candidate": c, "copeland": copeland.get(c, 0.0), "votes_won": wins.get(c, 0)}
            for c in ranking
        ],
        "pairs": pairs,
        "order_agreement": (round(agreeing / len(judged), 4) if judged else None),
        "alpha": _alpha(votes),
    }


def _alpha(votes: list[PairVote]) -> float | None:
    """Krippendorff's alpha (nominal): units are the unordered pairs, raters the two orders
    (rater 0 saw the lower index first). None when it is undefined (fewer than two outcomes
    seen, or no pair judged in both orders)."""
    units = sorted({(min(v.a, v.b), max(v.a, v.b)) for v in votes})
    if not units:
        return None
    matrix = np.full((2, len(units)), np.nan)
    for vote in votes:
        unit = units.index((min(vote.a, vote.b), max(vote.a, vote.b)))
        matrix[0 if vote.a < vote.b else 1, unit] = _outcome(vote)
    paired = ~np.isnan(matrix).any(axis=0)
    values = set(matrix[:, paired].flatten().tolist())
    if not paired.any() or len(values) < 2:
        return None
    try:
        alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(alpha) else round(alpha, 4)


def rubric_tally(candidates: list[int], votes: list[RubricVote]) -> dict[str, Any]:
    scores: dict[int, list[int]] = {c: [] for c in candidates}
    for vote in votes:
        scores.setdefault(vote.candidate, []).append(vote.score)
    means = {c: (sum(s) / len(s) if s else None) for c, s in scores.items()}
    scored = [c for c, m in means.items() if m is not None]
    ranking = sorted(scored, key=lambda c: (-(means[c] or 0.0), c))
    return {
        "method": "mean rubric score",
        "winner": ranking[0] if ranking else None,
        "ranking": [{"candidate": c, "mean": round(means[c] or 0.0, 4)} for c in ranking],
        "pairs": [],
        "order_agreement": None,
        "alpha": None,
    }
