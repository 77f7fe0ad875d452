"""The fastest scenarios of the fault suite (`make chaos`), through the same code, so CI runs them:
a worker SIGKILLed mid-run, and Redis SIGKILLed and restarted empty mid-run.

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
