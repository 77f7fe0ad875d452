"""The fastest scenarios of the fault suite (`make chaos`), through the same code, so CI runs them:
a worker SIGKILLed mid-run, Redis SIGKILLed and restarted empty mid-run, a model provider
answering with the issue's fault mix, and ten runs sharing one provider's concurrency and rate
cap.

Each scenario is its own process with its own Redis and database (scripts/chaos.py explains why),
so this test needs no test database; it uses DATABASE_URL's PostgreSQL server when set, SQLite
otherwise, like `make chaos`. The two run side by side: both are mostly sleeping agents.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"


def load_chaos() -> ModuleType:
    # scripts/ is not a package: load the file itself, as `make chaos` runs it.
    spec = importlib.util.spec_from_file_location("chaos_suite", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_side_by_side(chaos: ModuleType, names: list[str]) -> tuple[list[dict[str, Any]], str]:
    database_url = os.environ.get("DATABASE_URL") or None
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(lambda name: chaos.run_scenario(name, database_url), names))
    report = chaos.table(results) + "".join(
        f"\n{r['scenario']}: {r.get('notes')} {r.get('problems')} logs={r.get('logs')}"
        for r in results
    )
    return results, report


def test_worker_kill_and_redis_restart_lose_nothing() -> None:
    chaos = load_chaos()
    database_url = os.environ.get("DATABASE_URL") or None
    with ThreadPoolExecutor(max_workers=len(chaos.FAST)) as pool:
        results = list(pool.map(lambda name: chaos.run_scenario(name, database_url), chaos.FAST))
    report = chaos.table(results) + "".join(
        f"\n{r['scenario']}: {r.get('problems')} logs={r.get('logs')}" for r in results
    )
    for result in results:
        assert result["ok"], report
        assert result["faults"] >= 1, report
        assert result["lost"] == result["duplicates"] == result["overruns"] == 0, report
        assert result["recovery_s"] <= result["bound_s"], report


def test_provider_fault_mix_and_a_shared_provider_cap_hold() -> None:
    # The fault mix: 30% 429 (Retry-After), 10% 5xx, 5% a body that is not JSON, 5% hangs past
    # the call timeout; every run must end with its agents succeeded (or, for an agent that used
    # up its attempts on 5xx/garbage/hangs, failed with the error shown) and every paid call in
    # the run's cost. The cap: ten runs on 4 concurrent calls and 90 requests a minute, as the
    # server measured them.
    chaos = load_chaos()
    results, report = run_side_by_side(chaos, chaos.FAST_PROVIDER)
    for result in results:
        assert result["ok"], report
        assert result["lost"] == result["duplicates"] == result["overruns"] == 0, report
        assert result["recovery_s"] <= result["bound_s"], report
    mix, cap = results
    assert mix["faults"] >= 10 and any("429" in note for note in mix["notes"]), report
    assert any("at most" in note for note in cap["notes"]), report
