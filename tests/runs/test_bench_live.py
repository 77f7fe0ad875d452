"""``bench live`` drives a real daphne and real Chromium pages, and every committed event's
fragment reaches every page (latencies are reported, never asserted)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from runs.benchmarks.live import CHROMIUM
from runs.models import Run
from tests.conftest import subprocess_env

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
