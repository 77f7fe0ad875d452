"""The fault suite (issue 14): real workers, a real Redis and real runs, with faults injected.

    make chaos                                   # every scenario
    .venv/bin/python scripts/chaos.py [--json] [--keep] [--short] [SCENARIO ...]

Each scenario runs in a process of its own (scripts/chaos_scenarios.py) with a private Redis on
a free port, a fresh database (a new PostgreSQL database on the server DATABASE_URL names, dropped
afterwards; SQLite in the scenario's temp dir when DATABASE_URL is unset), real Celery workers and
heuristic runs, with the product's default recovery settings (``--short`` shortens them for CI).
Afterwards it checks the state as the faults left it (nothing rebuilt or repaired first): every
run terminal within the scenario's bound, every task succeeded (or, where the budget is meant to
run out, skipped for it) with at most one ``task.succeeded`` event, no duplicate finding, a
gap-free event log, no cost reconciliation needed, and settled cost = sum of step costs = the
budget spent that Redis holds <= budget. Prints one row per scenario
and exits 1 if any check failed.

This module imports nothing from Django (the scenarios need their own settings), so a test can
import it and call run_scenario(); tests/engine/test_chaos_fast.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "scripts" / "chaos_scenarios.py"

# Same order as the issue: cheapest and most likely first.
SCENARIOS = [
    "worker-kill",
    "redis-restart",
    "redis-restart-5-runs",
    "redis-restart-idle-worker",
    "redis-restart-budget-out",
    "prefork-child-kill-x3",
    "worker-sigstop-past-lease",
    "new-db-old-redis",
    "db-drop",
    "provider-fault-mix",
    "provider-cap-10-runs",
    "ws-reconnect",
]
FAST = ["worker-kill", "redis-restart"]
# The provider scenarios CI runs too (tests/engine/test_chaos_fast.py): each under a minute.
FAST_PROVIDER = ["provider-fault-mix", "provider-cap-10-runs"]

# The scenarios run with the product's default recovery settings (a sweep every 5 s, a worker
# presumed dead 10 s after its last liveness refresh, a stalled run moved on after 15 s, a frozen
# worker's transaction ended after 5 s). --short shortens them for a quicker CI pass; the
# README's fault table is measured without it.
SHORT_SETTINGS = {
    "HARNESS_SWEEP_S": "2",
    "HARNESS_WORKER_TTL_S": "4",
    "HARNESS_STALL_S": "4",
    "HARNESS_AGENT_LEASE_S": "6",
    "HARNESS_REQUEUE_AFTER_S": "4",
    "HARNESS_CALL_TIMEOUT_S": "5",
    "HARNESS_WATCHDOG_S": "2",
    "HARNESS_DB_IDLE_TX_TIMEOUT_S": "3",
}
# Recovery settings a caller's environment could carry into a scenario: dropped, so the suite
# measures the defaults (or --short's).
RECOVERY_NAMES = [*SHORT_SETTINGS, "CELERY_VISIBILITY_TIMEOUT"]
SCENARIO_TIMEOUT_S = 300

COLUMNS = [
    ("scenario", 26),
    ("runs", 4),
    ("agents", 6),
    ("faults", 6),
    ("lost", 4),
    ("dups", 4),
    ("overruns", 8),
    ("recovery", 14),
    ("verdict", 7),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_kind(database_url: str | None) -> str:
    if not database_url:
        return "SQLite (a file in each scenario's temp dir; DATABASE_URL is unset)"
    parts = urlsplit(database_url)
    return f"PostgreSQL (a fresh database per scenario on {parts.hostname}:{parts.port or 5432})"


def _admin(database_url: str, sql: str) -> None:
    # psycopg here, not Django: this process must not read settings (each scenario has its own).
    import psycopg

    parts = urlsplit(database_url)
    # libpq takes postgres:// and postgresql:// alike; the maintenance database holds no data.
    admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.encode())  # our own identifiers only, never user input


def scenario_database(database_url: str | None, name: str, tmp: Path) -> tuple[str, str | None]:
    """(DATABASE_URL for the scenario, the PostgreSQL database to drop afterwards)."""
    if not database_url:
        return f"sqlite:///{tmp / 'db.sqlite3'}", None
    db = f"chaos_{name.replace('-', '_')}_{os.getpid()}_{int(time.time())}"
    _admin(database_url, f'CREATE DATABASE "{db}"')
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", "")), db


def run_scenario(
    name: str, database_url: str | None = None, keep: bool = False, short: bool = False
) -> dict[str, Any]:
    """Run one scenario in its own process (the default recovery settings unless ``short``);
    the measured figures and the failed checks."""
    tmp = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    url, dropme = scenario_database(database_url, name, tmp)
    inherited = {k: v for k, v in os.environ.items() if k not in RECOVERY_NAMES}
    env = {
        **inherited,
        **(SHORT_SETTINGS if short else {}),
        "DJANGO_SETTINGS_MODULE": "harness_site.settings",
        "DATABASE_URL": url,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "HARNESS_DATA_DIR": str(tmp),
        "HARNESS_TARGET_ROOTS": str(tmp),
        "PYTHONUNBUFFERED": "1",
    }
    # The scenario is not a test session: its queue and keys are the product's own names.
    env.pop("HARNESS_TESTING", None)
    env.pop("HARNESS_TEST_SESSION", None)
    started = time.monotonic()
    result: dict[str, Any]
    try:
        with open(tmp / "scenario.log", "wb") as log:
            proc = subprocess.run(  # noqa: S603 - fixed argv
                [sys.executable, str(CHILD), name],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=SCENARIO_TIMEOUT_S,
                check=False,
            )
        lines = proc.stdout.decode(errors="replace").strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        if not result:
            result = {"scenario": name, "ok": False, "problems": ["no result; see scenario.log"]}
    except subprocess.TimeoutExpired:
        result = {"scenario": name, "ok": False, "problems": [f"over {SCENARIO_TIMEOUT_S} s"]}
    finally:
        if dropme:
            _admin(database_url or "", f'DROP DATABASE IF EXISTS "{dropme}" WITH (FORCE)')
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    if keep or not result.get("ok"):
        result["logs"] = str(tmp)  # worker logs, the Redis log and the scenario's stderr
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def row(result: dict[str, Any]) -> list[str]:
    recovery = result.get("recovery_s")
    bound = result.get("bound_s")
    return [
        result["scenario"],
        str(result.get("runs", "-")),
        str(result.get("agents", "-")),
        str(result.get("faults", "-")),
        str(result.get("lost", "-")),
        str(result.get("duplicates", "-")),
        str(result.get("overruns", "-")),
        f"{recovery} s (<= {bound})" if recovery is not None else f"> {bound} s",
        "PASS" if result.get("ok") else "FAIL",
    ]


def table(results: list[dict[str, Any]]) -> str:
    lines = ["  ".join(title.ljust(width) for title, width in COLUMNS)]
    for result in results:
        cells = row(result)
        lines.append("  ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's temp dir")
    parser.add_argument(
        "--short",
        action="store_true",
        help="shortened recovery settings (CI); without it the product's defaults",
    )
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL") or None
    names = args.scenarios or SCENARIOS
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    if not args.json:
        print(f"database: {database_kind(database_url)}")
        print("redis: a private redis-server per scenario on a free port, no persistence")
        settings = SHORT_SETTINGS if args.short else {}
        shown = " ".join(f"{k}={v}" for k, v in settings.items())
        print(f"workers: {shown or 'the default recovery settings'}")
        print(table([]))
    results = []
    for name in names:
        result = run_scenario(name, database_url, keep=args.keep, short=args.short)
        results.append(result)
        if not args.json:
            print(table([result]).splitlines()[-1], flush=True)
            for line in result.get("notes", []) + result.get("problems", []):
                print(f"    {line}")
            if "logs" in result:
                print(f"    logs: {result['logs']}")
    if args.json:
        doc = {
            "database": database_kind(database_url),
            "settings": SHORT_SETTINGS if args.short else "defaults",
        }
        print(json.dumps({**doc, "scenarios": results}, indent=2))
    else:
        print()
        print(table(results))
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
