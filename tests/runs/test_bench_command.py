"""``manage.py bench`` reports figures in its documented shape (timings are reported, never
asserted)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def _records(*args: str) -> list[dict[str, object]]:
    out = io.StringIO()
    call_command("bench", *args, "--json", stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_peers_and_aggregation_report_one_object_per_case() -> None:
    records = _records("peers", "aggregation", "--size", "40x8", "--latency-ms", "20")
    records += _records("aggregation", "--findings", "300")
    peers = [r for r in records if r["scenario"] == "peers"]
    assert len(peers) == 1
    assert peers[0]["parameters"] == {"n": 40, "c": 8, "latency_ms": 20}
    figures = peers[0]["figures"]
    assert isinstance(figures, dict)
    # 40 sleeps of 20 ms, 8 at a time, cannot take less than 5 rounds.
    assert figures["asyncio_gather_s"] >= 0.1
    # LangGraph is a dev dependency: its Send fan-out is measured beside ours.
    assert isinstance(figures["langgraph_s"], float) and figures["langgraph_s"] >= 0.1
    aggregation = [r for r in records if r["scenario"] == "aggregation"]
    assert [r["parameters"] for r in aggregation] == [
        {"findings": 1000},
        {"findings": 10_000},
        {"findings": 300},
    ]
    for record in aggregation:
        figures = record["figures"]
        assert isinstance(figures, dict)
        assert 0 < figures["clusters"] <= record["parameters"]["findings"]  # type: ignore[index]
    machine = records[0]["machine"]
    assert isinstance(machine, dict) and machine["cores"] and machine["database"]


@pytest.mark.parametrize("args", [["nope"], ["peers", "--size", "10"], ["peers", "--size", "0x1"]])
def test_bad_arguments_get_a_clear_message(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("bench", *args, stdout=io.StringIO())
