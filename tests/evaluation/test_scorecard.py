"""The scorecard's numbers against hand computations."""

from __future__ import annotations

import pytest

from agents.evaluation.scorecard import (
    Judgement,
    agreement,
    bootstrap_ci,
    build_scorecard,
    csv_rows,
    sign_test,
)


def _j(
    item: str, dim: str, score: int | None, rater: str = "judge-0", variant: str = ""
) -> Judgement:
    return Judgement(variant, item, dim, rater, score, f"{dim} of {item} by {rater}")


def test_dimension_mean_is_the_mean_of_item_means_over_judges() -> None:
    # item 1: judges 4 and 2 -> 3; item 2: 5 and 5 -> 5; item 3: 1 and 2 -> 1.5
    scores = {"1": (4, 2), "2": (5, 5), "3": (1, 2)}
    judgements = [
        _j(item, "clarity", s, f"judge-{k}")
        for item, pair in scores.items()
        for k, s in enumerate(pair)
    ]
    card = build_scorecard(judgements, ["clarity"], judges_per_cell=2)
    row = card["dimensions"][0]
    assert row["name"] == "clarity"
    assert row["mean"] == pytest.approx((3 + 5 + 1.5) / 3, abs=1e-4)
    assert row["n"] == 3
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert row["ci_low"] >= 1.5 and row["ci_high"] <= 5
    assert card["worst"]["clarity"] == ["3", "1", "2"]
    assert card["items"][0] == {
        "id": "1",
        "variant": "",
        "scores": {"clarity": 3.0},
        "rationale": {"clarity": "clarity of 1 by judge-0"},
        "judges": {"clarity": [4, 2]},
    }
    assert row["distribution"] == {"1": 0, "2": 1, "3": 1, "4": 0, "5": 1}  # 1.5 rounds to 2


def test_abstentions_count_in_no_mean() -> None:
    card = build_scorecard(
        [_j("1", "correctness", 4), _j("2", "correctness", None), _j("3", "correctness", 2)],
        ["correctness"],
    )
    row = card["dimensions"][0]
    assert (row["mean"], row["n"], row["abstained"]) == (3.0, 2, 1)
    assert row["agreement"] is None  # one judge per cell


def test_bootstrap_interval_is_degenerate_for_constant_scores_and_reproducible() -> None:
    assert bootstrap_ci([4.0] * 10) == (4.0, 4.0)
    values = [1.0, 2.0, 3.0, 4.0, 5.0] * 8
    low, high = bootstrap_ci(values)
    assert bootstrap_ci(values) == (low, high)
    # the mean is 3 and its standard error sqrt(2/40) ~ 0.224: the interval is about +-0.44
    assert low == pytest.approx(3 - 1.96 * (2 / 40) ** 0.5, abs=0.08)
    assert high == pytest.approx(3 + 1.96 * (2 / 40) ** 0.5, abs=0.08)


def test_krippendorff_alpha_matches_a_hand_computation() -> None:
    # Judges [1,2,3] and [1,2,4]: D_o = 2/6, D_e = 82/30, alpha = 1 - 10/82.
    assert agreement([[1, 1], [2, 2], [3, 4]]) == pytest.approx(1 - 10 / 82, abs=1e-9)
    assert agreement([[3], [4]]) is None
    assert agreement([[3, 3], [3, 3]]) is None  # no variation: alpha undefined


def test_ab_win_rate_and_sign_test_match_a_hand_computation() -> None:
    a = {"1": 2, "2": 3, "3": 1, "4": 4, "5": 2, "6": 3, "7": 4}
    b = {"1": 4, "2": 4, "3": 3, "4": 3, "5": 5, "6": 5, "7": 4}  # b wins 5, a wins 1, 1 tie
    judgements = [_j(i, "helpfulness", s, variant="a") for i, s in a.items()]
    judgements += [_j(i, "helpfulness", s, variant="b") for i, s in b.items()]
    card = build_scorecard(judgements, ["helpfulness"])
    row = card["comparison"][0]
    assert (row["wins_b"], row["wins_a"], row["ties"], row["n"]) == (5, 1, 1, 7)
    assert row["win_rate_b"] == pytest.approx(5.5 / 7, abs=1e-4)
    assert row["mean_delta"] == pytest.approx(9 / 7, abs=1e-4)
    # two-sided exact sign test: 2 * P(X >= 5 | n=6, p=.5) = 2 * 7/64
    assert row["p_value"] == pytest.approx(14 / 64, abs=1e-6)
    assert sign_test(0, 0) == 1.0
    assert card["comparison"][-1]["name"] == "overall"
    assert [r["variant"] for r in card["dimensions"]] == ["a", "b"]


def test_human_scores_are_kept_out_of_the_judges_numbers() -> None:
    judgements = [_j("1", "safety", 5), _j("1", "safety", 1, rater="human:alice")]
    card = build_scorecard(judgements, ["safety"])
    assert card["dimensions"][0]["mean"] == 5.0


def test_csv_has_a_column_per_dimension_and_rationale() -> None:
    card = build_scorecard([_j("1", "clarity", 4), _j("1", "safety", 5)], ["clarity", "safety"])
    assert csv_rows(card) == [
        ["id", "variant", "clarity", "safety", "clarity_rationale", "safety_rationale"],
        ["1", "", 4.0, 5.0, "clarity of 1 by judge-0", "safety of 1 by judge-0"],
    ]
