"""``manage.py bench fanout``, the README's performance command, as a user runs it: above the
launch form's 50 voters and with no latency, so the scenario cannot silently stop working."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SIZE = ["--size", "120x40", "--latency-ms", "0"]
TWO_WORKERS = ["--workers", "2", "--json"]


def test_bench_fanout_and_throughput_run_more_than_fifty_one_call_agents_at_no_latency() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "fanout", "throughput", *SIZE, *TWO_WORKERS],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record, throughput = [
        json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")
    ]
    assert throughput["scenario"] == "throughput"
    assert throughput["parameters"] == {"n": 120, "c": 40, "latency_ms": 0, "workers": 2}
    assert throughput["figures"]["succeeded"] == 120
    assert throughput["figures"]["agents_per_s"] > 0
    assert record["scenario"] == "fanout"
    assert record["parameters"] == {"n": 120, "c": 40, "latency_ms": 0}
    figures = record["figures"]
    assert figures["succeeded"] == 120
    assert 1 <= figures["max_in_flight"] <= 40
    assert figures["harness_cpu_ms_per_agent"] > 0
    assert figures["events_per_agent"] >= 4  # created, queued, started, succeeded at least
