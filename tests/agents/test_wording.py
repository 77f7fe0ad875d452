"""Counts agree with their nouns: the report's notes, summaries and messages never say
"finding(s)"."""

from __future__ import annotations

from agents.aggregation.records import Cluster
from agents.aggregation.stages import _support, unknown_steps
from agents.wording import count, noun


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert count(1, "finding") == "1 finding"
    assert count(0, "finding") == "0 findings"
    assert count(2, "lens", "lenses") == "2 lenses"
    assert noun(1, "lens", "lenses") == "lens"


def test_a_report_items_support_reads_as_words() -> None:
    one = Cluster(
        key="k",
        title="t",
        severity="high",
        confidence=0.9,
        path="a.py",
        line_start=1,
        line_end=1,
        rule="sec.sql",
        lenses=["security"],
        detail="",
        evidence="",
        finding_ids=[1],
        task_ids=[1],
    )
    assert _support(one) == "1 agent, 1 lens"
    one.votes, one.lenses = 3, ["security", "reliability"]
    assert _support(one) == "3 agents, 2 lenses"


def test_an_unknown_aggregation_step_is_named_in_words() -> None:
    assert unknown_steps(["dedupe"]) == "Unknown aggregation step: dedupe."
    assert unknown_steps(["a", "b"]) == "Unknown aggregation steps: a, b."
