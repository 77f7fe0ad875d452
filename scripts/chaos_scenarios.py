"""One scenario of the fault suite, in a process of its own (``scripts/chaos.py`` starts it).

    DATABASE_URL=... REDIS_URL=redis://127.0.0.1:PORT/0 HARNESS_DATA_DIR=DIR \
        HARNESS_TARGET_ROOTS=DIR .venv/bin/python scripts/chaos_scenarios.py SCENARIO

A process per scenario because Django reads DATABASE_URL and REDIS_URL once, and every scenario
gets a fresh database and a private Redis. It starts that Redis, migrates, starts real Celery
workers, launches real heuristic runs, injects the fault, then checks what the records say. The
last stdout line is one JSON object: the measured figures and every failed check.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")

import django  # noqa: E402 - after sys.path: run as a script from anywhere

django.setup()

import psutil  # noqa: E402
from chaos_net import db_drop, provider_cap_10_runs, provider_fault_mix, ws_reconnect  # noqa: E402
from chaos_stack import (  # noqa: E402
    Stack,
    check_run,
    launch,
    succeeded,
    wait_finished,
    wait_for,
)
from django.conf import settings  # noqa: E402
from django.core.management import CommandError, call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Sum  # noqa: E402

from runs.models import Run, Step, Task  # noqa: E402

# --- the scenarios -----------------------------------------------------------------------------
# Each returns the run ids to check and the recovery time (None when past its bound).


def worker_kill(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """The whole worker (and its threads) SIGKILLed mid-run, then a new worker."""
    first = stack.start_worker()
    run = launch(20, "worker-kill", latency_ms=600)
    wait_for(lambda: succeeded([run]) >= 12, 60, "12 agents done")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    stack.fault(f"worker SIGKILL at {succeeded([run])} done")
    stack.start_worker()
    return [run], wait_finished(stack, [run], bound)


def _redis_restart(stack: Stack, bound: float, runs: int, files: int) -> list[int]:
    worker = stack.start_worker()
    ids = [launch(files, f"redis-{i}") for i in range(runs)]
    wait_for(lambda: succeeded(ids) >= 4 * runs, 60, "agents under way")
    stack.kill_redis()
    time.sleep(2)
    stack.start_redis()
    stack.notes.append("redis restarted on the same port and data dir (empty: no persistence)")
    time.sleep(1)
    stack.ensure_worker(worker)
    return ids


def redis_restart(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """Redis SIGKILLed mid-run and started again empty on the same port: one run."""
    ids = _redis_restart(stack, bound, runs=1, files=20)
    return ids, wait_finished(stack, ids, bound)


def redis_restart_5runs(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """The same with five runs in flight at once."""
    ids = _redis_restart(stack, bound, runs=5, files=8)
    return ids, wait_finished(stack, ids, bound)


def redis_idle(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """Redis restarted under an idle worker that has served a run (so its channel has delivered
    messages, and kombu restores them when the connection drops); the next run must be served
    by the same worker, which must not have died."""
    worker = stack.start_worker()
    warm = launch(4, "warm-up")
    wait_for(lambda: Run.objects.filter(pk=warm, finished_at__isnull=False).exists(), 60, "warm-up")
    time.sleep(2)
    stack.kill_redis()
    time.sleep(3)
    stack.start_redis()
    stack.notes.append("redis restarted empty after a first run; the next run 5 s later")
    time.sleep(5)
    if worker.poll() is not None:
        stack.problems.append(f"the idle worker died (exit {worker.returncode})")
    stack.ensure_worker(worker)
    run = launch(14, "idle")
    return [warm, run], wait_finished(stack, [run], bound)


def prefork_child_kill(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """Three SIGKILLs of prefork pool children while they run agents."""
    worker = stack.start_worker(pool="prefork", concurrency=4)
    run = launch(14, "prefork")
    killed: set[int] = set()
    for at in (6, 14, 22):
        wait_for(lambda at=at: succeeded([run]) >= at, 90, f"{at} agents done")  # type: ignore[misc]
        # A child killed before stays listed (a zombie) until the pool reaps it: skip those.
        children = [
            c
            for c in psutil.Process(worker.pid).children()
            if c.pid not in killed and c.status() != psutil.STATUS_ZOMBIE
        ]
        if not children:
            stack.problems.append("the prefork worker has no live pool children")
            break
        victim = children[at % len(children)]
        victim.send_signal(signal.SIGKILL)
        killed.add(victim.pid)
        stack.fault(f"pool child {victim.pid} SIGKILL at {succeeded([run])} done")
    return [run], wait_finished(stack, [run], bound)


# Each run's budget in the budget-out scenario: about half of what its 198 agents would cost.
BUDGET_OUT_USD = "0.03"


def spent(run_ids: list[int]) -> Decimal:
    """What the runs' stored calls cost so far."""
    total = Step.objects.filter(task__run_id__in=run_ids).aggregate(c=Sum("cost_usd"))["c"]
    return Decimal(total or 0)


def redis_restart_budget_out(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """Issue 20's case: three runs of 198 agents, 20 at a time, on a $0.03 budget each; Redis
    SIGKILLed once half of it is spent and started again empty 2 s later. Agents waiting to
    retry lose their delayed messages with Redis; every run must still end budget-exhausted
    with its report, its cost every paid call."""
    worker = stack.start_worker(concurrency=24)
    ids = [launch(66, f"budget-{i}", concurrency=20, budget_usd=BUDGET_OUT_USD) for i in range(3)]
    half = Decimal(BUDGET_OUT_USD) * len(ids) / 2
    wait_for(lambda: spent(ids) >= half, 120, "half the budgets spent")
    stack.kill_redis()
    time.sleep(2)
    stack.start_redis()
    stack.notes.append(f"redis SIGKILLed at ${spent(ids):.4f} of ${half * 2:.2f} spent")
    time.sleep(1)
    stack.ensure_worker(worker)
    return ids, wait_finished(stack, ids, bound)


def open_transactions() -> str:
    """PostgreSQL sessions idle inside a transaction: what a frozen worker holds (locks too)."""
    if connection.vendor != "postgresql":
        return "(SQLite: not measured)"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'"
        )
        return str(cursor.fetchone()[0])


def worker_sigstop(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """One of two workers frozen (SIGSTOP) mid-run: the other must take its agents over once
    its liveness key expires and finish the run while it is still frozen; then it is thawed
    (SIGCONT) and finds its agents taken, which must not count twice."""
    frozen = stack.start_worker(concurrency=4)
    stack.start_worker(concurrency=4)
    run = launch(20, "sigstop")
    wait_for(lambda: succeeded([run]) >= 10, 60, "10 agents done")
    os.killpg(frozen.pid, signal.SIGSTOP)
    stack.fault(f"worker SIGSTOP at {succeeded([run])} done")
    held = Task.objects.filter(run_id=run, status=Task.Status.RUNNING).count()
    time.sleep(0.5)
    stack.notes.append(f"{open_transactions()} transactions left open by the frozen worker")
    recovery = wait_finished(stack, [run], bound)
    os.killpg(frozen.pid, signal.SIGCONT)
    lease, ttl = settings.HARNESS_AGENT_LEASE_S, settings.HARNESS_WORKER_TTL_S
    stack.notes.append(
        f"{held} agents running at the freeze; SIGCONT after "
        f"{time.monotonic() - (stack.fault_at or 0):.0f} s (lease {lease:.0f} s, worker TTL "
        f"{ttl:.0f} s)"
    )
    # The thawed worker still believes it holds agents: give it time to try to finish them.
    time.sleep(max(lease / 10, 2 * ttl))
    if frozen.poll() is not None:
        stack.notes.append(f"thawed worker exited ({frozen.returncode})")
    return [run], recovery


def flush_database(stack: Stack) -> None:
    """Empty every table and reset the id sequences. On PostgreSQL the killed worker's backend
    may still be finishing a statement for a moment, and its locks against TRUNCATE's can end in
    a deadlock error: that is the suite's timing, not the product's, so try again."""
    for attempt in range(1, 6):
        try:
            call_command("flush", interactive=False, verbosity=0)
        except CommandError as exc:
            if attempt == 5:
                raise
            stack.notes.append(f"flush attempt {attempt} failed ({exc.__cause__}); again")
            time.sleep(1)
        else:
            return


def new_db_old_redis(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """A run killed mid-way leaves its Redis state (queued messages, slots, reservations); the
    database is then emptied with its id sequences reset, so a new run gets the same run and task
    ids, and must finish on its own records only."""
    first = stack.start_worker()
    old = launch(10, "old")
    wait_for(lambda: succeeded([old]) >= 6, 60, "6 agents of the old run done")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    flush_database(stack)
    stack.fault("worker SIGKILL, database flushed (ids reset), Redis kept")
    stack.start_worker()
    new = launch(10, "new")
    if new != old:
        stack.problems.append(f"the new run got id {new}, not {old}: ids were not reused")
    return [new], wait_finished(stack, [new], bound)


SCENARIOS: dict[str, tuple[Callable[[Stack, float], tuple[list[int], float | None]], float]] = {
    "worker-kill": (worker_kill, 40),
    "redis-restart": (redis_restart, 45),
    "redis-restart-5-runs": (redis_restart_5runs, 60),
    "redis-restart-idle-worker": (redis_idle, 40),
    "redis-restart-budget-out": (redis_restart_budget_out, 60),
    "prefork-child-kill-x3": (prefork_child_kill, 60),
    "worker-sigstop-past-lease": (worker_sigstop, 45),
    "new-db-old-redis": (new_db_old_redis, 40),
    "db-drop": (db_drop, 60),
    "provider-fault-mix": (provider_fault_mix, 120),
    "provider-cap-10-runs": (provider_cap_10_runs, 90),
    "ws-reconnect": (ws_reconnect, 60),
}


# Scenarios whose faults may use up an agent's attempts (failed, its error shown, its paid calls
# counted): with 20% of calls failing and 4 attempts an agent gives up about 2% of the time.
GAVE_UP_OK = {"provider-fault-mix"}
# Scenarios whose runs are meant to run out of budget.
BUDGET_OUT = {"redis-restart-budget-out"}


def main(name: str) -> int:
    body, bound = SCENARIOS[name]
    stack = Stack()
    result: dict[str, Any] = {"scenario": name, "bound_s": bound}
    checks: list[dict[str, Any]] = []
    recovery: float | None = None
    try:
        stack.start_redis()
        call_command("migrate", verbosity=0)
        ids, recovery = body(stack, bound)
        checks = [
            check_run(
                pk,
                gave_up_ok=name in GAVE_UP_OK,
                budget_out=name in BUDGET_OUT,
                fault_wall=stack.fault_wall,
            )
            for pk in ids
        ]
    except Exception as exc:  # the report must still come out, with the reason
        cause = exc.__cause__ or exc.__context__
        why = f" (caused by {type(cause).__name__}: {cause})" if cause else ""
        stack.problems.append(f"{type(exc).__name__}: {exc}{why}")
        traceback.print_exc()  # to scenario.log, kept with the other logs of a failure
    finally:
        stack.stop()
    problems = stack.problems + [p for c in checks for p in c["problems"]]
    result.update(
        runs=len(checks),
        agents=sum(c["agents"] for c in checks),
        findings=sum(c["findings"] for c in checks),
        faults=stack.faults,
        lost=sum(c["lost"] for c in checks),
        gave_up=sum(c["gave_up"] for c in checks),
        duplicates=sum(c["duplicates"] for c in checks),
        overruns=sum(c["overruns"] for c in checks),
        recovery_s=None if recovery is None else round(recovery, 1),
        notes=stack.notes
        + [f"run {c['run']}: {c['gave_up']} agents gave up" for c in checks if c["gave_up"]]
        + [note for c in checks for note in c["notes"]],
        problems=problems,
        ok=not problems and bool(checks),
    )
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
