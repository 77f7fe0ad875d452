"""Comparing two report versions: items matched by the findings behind them."""

from __future__ import annotations

from typing import Any

from agents.aggregation.compare import compare


def item(rank: int | None, title: str, findings: list[int], kept: bool = True) -> dict[str, Any]:
    return {
        "rank": rank,
        "title": title,
        "severity": "high",
        "path": "app/db.py",
        "line_start": rank,
        "finding_ids": findings,
        "kept": kept,
    }


def test_added_dropped_merged_and_reranked_items_are_told_apart() -> None:
    v1 = [
        item(1, "SQL built from strings", [1, 2]),
        item(2, "Hardcoded SQL", [3]),
        item(3, "Shell injection", [4]),
        item(4, "Weak hash", [5]),
        item(None, "Long function", [6], kept=False),
    ]
    v2 = [
        item(1, "SQL injection", [1, 2, 3]),  # v1's #1 and #2 are now one item
        item(2, "Weak hash", [5]),  # was #4
        item(3, "Long function", [6]),  # was below the cut
    ]
    result = compare(v1, v2, (1, 2))
    assert [(c.title, c.merged) for c in result.merged] == [
        ("SQL injection", ["#1 SQL built from strings", "#2 Hardcoded SQL"])
    ]
    assert [(c.title, c.was_rank, c.rank) for c in result.reranked] == [("Weak hash", 4, 2)]
    assert [c.title for c in result.added] == ["Long function"]
    assert [(c.title, c.was_rank) for c in result.dropped] == [("Shell injection", 3)]
    assert result.unchanged == 0
    same = compare(v1, v1, (1, 1))
    assert same.changes == [] and same.unchanged == 4


def test_the_versions_side_by_side_and_why_an_item_was_dropped() -> None:
    v1 = [
        item(1, "SQL built from strings", [1]),
        item(2, "Shell injection", [4]),
        item(3, "Weak hash", [5]),
        item(4, "Debug left on", [7]),
    ]
    v2 = [
        item(1, "Weak hash", [5]),
        item(2, "SQL built from strings", [1]),
        item(None, "Shell injection", [4], kept=False) | {"dropped_reason": "below quorum"},
        item(3, "Long function", [6]),
        item(4, "Debug left on", [7]),
    ]
    result = compare(v1, v2, (1, 2))
    assert [(s.rank, s.title, s.mark) for s in result.older_items] == [
        (1, "SQL built from strings", "reranked"),
        (2, "Shell injection", "dropped"),
        (3, "Weak hash", "reranked"),
        (4, "Debug left on", "same"),
    ]
    assert [(s.rank, s.mark) for s in result.newer_items] == [
        (1, "reranked"),
        (2, "reranked"),
        (3, "added"),
        (4, "same"),
    ]
    (dropped,) = result.dropped
    assert dropped.why == "below quorum" and dropped.finding_ids == [4]
    gone = compare(v1, v2[:2], (1, 2)).dropped
    assert [(c.title, c.why) for c in gone] == [("Shell injection", ""), ("Debug left on", "")]


def test_moving_up_only_because_an_item_above_went_is_not_a_rerank() -> None:
    v1 = [item(1, "Gone", [1]), item(2, "SQL", [2]), item(3, "Shell", [3])]
    v2 = [item(1, "SQL", [2]), item(2, "Shell", [3]), item(3, "New", [4])]
    result = compare(v1, v2, (1, 2))
    assert result.reranked == [] and result.unchanged == 2
    assert [c.title for c in result.dropped] == ["Gone"] and [c.title for c in result.added] == [
        "New"
    ]
    assert [s.mark for s in result.newer_items] == ["same", "same", "added"]
