"""``bench live`` drives a real daphne and real Chromium pages, and every committed event's
fragment reaches every page (latencies are reported, never asserted)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.core.management import call_command

from runs.benchmarks.live import CHROMIUM
from runs.models import Run
from tests.conftest import ROOT, subprocess_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing"),
]


def test_every_event_reaches_every_open_page(monkeypatch: pytest.MonkeyPatch) -> None:
    # daphne must see this test's database, as the bench process does.
    for name, value in subprocess_env().items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    call_command(
        "bench",
        "live",
        "--rates",
        "20",
        "--pages",
        "2",
        "--live-seconds",
        "1",
        "--json",
        stdout=out,
    )
    [record] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["parameters"] == {"events_per_s": 20, "pages": 2}
    figures: dict[str, Any] = record["figures"]
    assert figures["events"] == 20
    assert figures["arrived_fraction"] == 1.0, figures
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    # The bench cleans up after itself: no run is left on the dashboard.
    assert not Run.objects.exists()


ONE_SECOND_ONE_PAGE = ["--rates", "10", "--pages", "1", "--live-seconds", "1"]


def _processes_with_data_dir(data_dir: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("HARNESS_DATA_DIR") == str(data_dir):
                found.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.Error, OSError):
            continue
    return found


def test_bench_live_on_a_fresh_data_directory_migrates_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "fresh"
    env = subprocess_env(HARNESS_DATA_DIR=str(data_dir))
    env.pop("DATABASE_URL")  # SQLite inside the fresh data directory: no tables yet
    env.pop("HARNESS_TESTING")
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", "live", *ONE_SECOND_ONE_PAGE, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [record] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert record["figures"]["arrived_fraction"] == 1.0, record
    assert _processes_with_data_dir(data_dir) == []
