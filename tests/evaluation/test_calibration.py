"""The calibration math: the sample, the latest score winning, and the judges' agreement with a
reviewer checked against a hand computation of Krippendorff's alpha."""

from __future__ import annotations

import hashlib

import pytest

from agents.evaluation.calibration import (
    DISAGREE_BELOW,
    HumanScore,
    calibrate,
    human_agreement,
    latest,
    sample_items,
)
from agents.evaluation.scorecard import Judgement, build_scorecard


def test_alpha_of_judges_against_a_reviewer_matches_the_hand_computation() -> None:
    # Judges 1, 2, 3 and the reviewer 1, 3, 3 on three items. Pairable values {1,1,2,3,3,3}
    # (n = 6). Observed: only item 2 differs, (2-3)^2 counted both ways over m-1 = 1, so
    # Do = 2/6. Expected: the squared differences of all ordered pairs of the six values,
    # 2 x (2x1x1 + 6x4 + 3x1) = 58, over n(n-1) = 30. alpha = 1 - (1/3)/(58/30) = 24/29.
    result = human_agreement({"1": 1, "2": 2, "3": 3}, {"ann": {"1": 1, "2": 3, "3": 3}})
    assert result["alpha"] == pytest.approx(24 / 29, abs=1e-4)
    assert result["mean_abs_diff"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["human_n"] == 3 and result["paired"] == 3 and result["reviewers"] == ["ann"]
    assert result["disagrees"] is False  # 3 scores: fewer than the 5 a flag needs


def test_a_dimension_is_flagged_below_the_threshold_with_enough_scores() -> None:
    judged = {str(i): s for i, s in enumerate([5, 4, 5, 4, 5, 1], start=1)}
    four = {"ann": {"1": 1, "2": 2, "3": 1, "4": 2}}
    five = {"ann": {**four["ann"], "5": 1}}
    assert human_agreement(judged, four)["disagrees"] is False
    flagged = human_agreement(judged, five)
    assert flagged["alpha"] < DISAGREE_BELOW and flagged["disagrees"] is True
    agreeing = human_agreement(judged, {"ann": {k: round(v) for k, v in judged.items()}})
    assert agreeing["alpha"] == 1.0 and agreeing["disagrees"] is False


def test_an_item_the_judges_abstained_on_is_counted_but_not_paired() -> None:
    result = human_agreement({"1": None, "2": 3}, {"ann": {"1": 4, "2": 3}})
    assert result["human_n"] == 2 and result["paired"] == 1
    assert result["alpha"] is None and result["mean_abs_diff"] == 0.0


def test_the_sample_is_the_lowest_hashes_in_id_order_whatever_the_input_order() -> None:
    keys = [("", str(i)) for i in range(1, 31)]
    by_hash = sorted(keys, key=lambda k: hashlib.sha256(f"\x00{k[1]}".encode()).hexdigest())
    expected = sorted(by_hash[:10], key=lambda k: int(k[1]))
    assert sample_items(keys) == expected
    assert sample_items(list(reversed(keys))) == expected
    assert sample_items(keys[:4]) == keys[:4]


def test_a_later_score_of_the_same_cell_replaces_the_earlier() -> None:
    scores = [
        HumanScore("ann", "", "1", "clarity", 2),
        HumanScore("bob", "", "1", "clarity", 5),
        HumanScore("ann", "", "1", "clarity", 4, "second look"),
    ]
    kept = latest(scores)
    assert kept[("ann", "", "1", "clarity")].score == 4
    assert kept[("bob", "", "1", "clarity")].score == 5


def test_calibrate_covers_every_dimension_row_of_the_scorecard() -> None:
    judgements = [
        Judgement("", item, dim, "judge-0", score)
        for item, score in (("1", 2), ("2", 4))
        for dim in ("clarity", "safety")
    ]
    card = build_scorecard(judgements, ["clarity", "safety"])
    result = calibrate(card, [HumanScore("ann", "", "2", "safety", 4)])
    assert result[("", "clarity")]["human_n"] == 0
    assert result[("", "safety")]["human_n"] == 1
    assert result[("", "safety")]["mean_abs_diff"] == 0.0


def test_an_ab_evaluation_is_calibrated_per_variant() -> None:
    judgements = [
        Judgement(variant, item, "clarity", "judge-0", score)
        for variant, scores in (("a", [1, 2, 3]), ("b", [5, 4, 3]))
        for item, score in zip(["1", "2", "3"], scores, strict=True)
    ]
    card = build_scorecard(judgements, ["clarity"])
    human = [HumanScore("ann", "b", item, "clarity", s) for item, s in (("1", 5), ("2", 4))]
    result = calibrate(card, human)
    assert result[("a", "clarity")]["human_n"] == 0
    assert result[("b", "clarity")]["human_n"] == 2
    assert result[("b", "clarity")]["alpha"] == 1.0
    assert sample_items([("a", "1"), ("b", "1")]) == [("a", "1"), ("b", "1")]
