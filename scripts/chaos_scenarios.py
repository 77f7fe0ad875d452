"""One scenario of the fault suite, in a process of its own (``scripts/chaos.py`` starts it).

    DATABASE_URL=... REDIS_URL=redis://127.0.0.1:PORT/0 HARNESS_DATA_DIR=DIR \
        HARNESS_TARGET_ROOTS=DIR .venv/bin/python scripts/chaos_scenarios.py SCENARIO

A process per scenario because Django reads DATABASE_URL and REDIS_URL once, and every scenario
gets a fresh database and a private Redis. It starts that Redis, migrates, starts real Celery
workers, launches real heuristic runs, injects the fault, then checks what the records say. The
last stdout line is one JSON object: the measured figures and every failed check.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
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
from django.core.management import CommandError, call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402

from agents.budget import BudgetNotInitialized  # noqa: E402
from harness_site import devstack, localredis  # noqa: E402
from runs.actions import launch_run  # noqa: E402
from runs.budget import budget_for, rebuild_budget  # noqa: E402
from runs.models import Event, Finding, Run, Step, Task  # noqa: E402
from tests.engine.helpers import make_target  # noqa: E402

DATA_DIR = Path(os.environ["HARNESS_DATA_DIR"])
REDIS_PORT = int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
BUDGET_USD = "5"


class Stack:
    """The private Redis and the worker processes of one scenario, and what happened to them."""

    def __init__(self) -> None:
        self.redis: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.faults = 0
        self.fault_at: float | None = None
        self.notes: list[str] = []
        self.problems: list[str] = []

    def start_redis(self) -> None:
        self.redis = localredis.ensure_private_redis(DATA_DIR, REDIS_PORT)
        if self.redis is None:
            raise RuntimeError(f"something already answers on port {REDIS_PORT}")

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()
        self.fault(f"redis SIGKILL (pid {self.redis.pid})")

    def fault(self, what: str) -> None:
        self.faults += 1
        self.fault_at = self.fault_at or time.monotonic()
        self.notes.append(what)

    def start_worker(self, pool: str = "threads", concurrency: int = 8) -> subprocess.Popen[bytes]:
        n = len(self.workers) + 1
        log = DATA_DIR / f"worker-{n}.log"
        argv = devstack.worker_argv(f"chaos{n}@%h", concurrency, pool)
        with open(log, "ab") as out:
            # Own session: a SIGKILL/SIGSTOP of the group reaches the pool children too.
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                cwd=ROOT,
                env=devstack.child_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {n} did not start; see {log}")
            time.sleep(0.1)
        self.workers.append(proc)
        return proc

    def ensure_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """A worker that died of the fault is replaced (as `make run`'s supervisor would), and
        the death is reported."""
        if proc.poll() is None:
            self.notes.append(f"worker pid {proc.pid} survived")
            return
        self.notes.append(f"worker pid {proc.pid} DIED (exit {proc.returncode}); replaced")
        self.start_worker()

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                # A frozen worker cannot act on SIGTERM: thaw it first.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)
            devstack.stop_process(proc, timeout=5)
        localredis.stop_private_redis(self.redis)


def launch(files: int, name: str, latency_ms: int = 500, concurrency: int = 8) -> int:
    target = make_target(DATA_DIR / "targets", files, name)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=concurrency,
        budget_usd=BUDGET_USD,
        latency_ms=latency_ms,
        options={"chunk_files": 1},
        title=f"chaos {name}",
    )
    return run.pk


def succeeded(run_ids: list[int]) -> int:
    return Task.objects.filter(run_id__in=run_ids, status=Task.Status.SUCCEEDED).count()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def wait_finished(stack: Stack, run_ids: list[int], bound: float) -> float | None:
    """Seconds from the first fault until every run is finished; None past the bound."""
    start = stack.fault_at or time.monotonic()
    deadline = start + bound
    while time.monotonic() < deadline:
        if not Run.objects.filter(pk__in=run_ids, finished_at__isnull=True).exists():
            return time.monotonic() - start
        time.sleep(0.2)
    left = Run.objects.filter(pk__in=run_ids, finished_at__isnull=True)
    for run in left:
        stack.problems.append(
            f"run {run.pk} not terminal {bound:.0f} s after the fault: status={run.status} "
            f"done={run.tasks_done}/{run.tasks_total} failed={run.tasks_failed}"
        )
    return None


def uneven_findings(run: Run) -> dict[str, list[int]]:
    """Lenses whose agents found different numbers of findings. Every module of the target is
    the same code (make_target), one file per agent: a finding stored twice under another
    fingerprint, or lost, shows up as an agent off its lens's count."""
    counts: dict[str, set[int]] = {}
    per_task = Task.objects.filter(run=run).annotate(n=Count("findings")).values_list("lens", "n")
    for lens, n in per_task:
        counts.setdefault(lens, set()).add(n)
    return {lens: sorted(ns) for lens, ns in counts.items() if len(ns) > 1}


def check_run(run_id: int) -> dict[str, Any]:
    """The invariants: terminal, nothing lost or done twice, gap-free log, cost consistent."""
    run = Run.objects.get(pk=run_id)
    problems: list[str] = []
    tag = f"run {run.pk}"
    if run.status != Run.Status.AWAITING_REVIEW:
        problems.append(f"{tag} ended {run.status} ({run.status_reason})")
    tasks = Task.objects.filter(run=run)
    by_status = dict(tasks.values_list("status").annotate(n=Count("id")).order_by())
    lost = tasks.exclude(status=Task.Status.SUCCEEDED).count()
    if lost:
        problems.append(f"{tag}: tasks not succeeded by status {by_status}")
    wins = Event.objects.filter(run=run, type="task.succeeded").values("task")
    twice = wins.annotate(n=Count("id")).filter(n__gt=1).count()
    silent = tasks.filter(status=Task.Status.SUCCEEDED).exclude(pk__in=wins).count()
    if twice or silent:
        problems.append(f"{tag}: {twice} tasks succeeded twice, {silent} with no event")
    dup_findings = (
        Finding.objects.filter(run=run)
        .values("task", "fingerprint")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if dup_findings:
        problems.append(f"{tag}: {dup_findings} duplicate findings")
    uneven = uneven_findings(run)
    if uneven:
        problems.append(f"{tag}: findings per agent differ within a lens: {uneven}")
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    if seqs != list(range(1, run.last_seq + 1)):
        problems.append(f"{tag}: event log has gaps ({len(seqs)} events, last_seq {run.last_seq})")
    steps = Step.objects.filter(task__run=run, kind="chat")
    n_steps = steps.count()
    steps_usd = steps.aggregate(c=Sum("cost_usd"))["c"] or 0
    all_steps_usd = Step.objects.filter(task__run=run).aggregate(c=Sum("cost_usd"))["c"] or 0
    if run.cost_usd != all_steps_usd:
        problems.append(f"{tag}: settled cost {run.cost_usd} != steps {all_steps_usd}")
    rebuilt = False
    try:
        state = budget_for(run).state()
    except BudgetNotInitialized:
        # Gone with a restarted Redis and never needed again: rebuilding shows what it would
        # hold, which is then only as good as the database (said in the notes).
        rebuild_budget(run)
        state = budget_for(run).state()
        rebuilt = True
    # Redis counts micro-USD per settle: one micro-dollar of rounding per call at most.
    if abs(state.spent_usd - float(steps_usd)) > 1e-6 * max(n_steps, 1):
        problems.append(f"{tag}: Redis spent {state.spent_usd} != steps {steps_usd}")
    limit = run.budget_usd if run.budget_usd is not None else Decimal(BUDGET_USD)
    overrun = int(state.spent_usd > float(limit) + 1e-9 or run.cost_usd > limit)
    if overrun:
        problems.append(f"{tag}: spent {state.spent_usd} over budget {run.budget_usd}")
    return {
        "run": run.pk,
        "agents": tasks.count(),
        "findings": Finding.objects.filter(run=run).count(),
        "lost": lost,
        "duplicates": twice + dup_findings,
        "overruns": overrun,
        "cost_usd": float(run.cost_usd),
        "budget_rebuilt_at_check": rebuilt,
        "problems": problems,
    }


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
    """Redis restarted under an idle worker; the next run must still be served."""
    worker = stack.start_worker()
    time.sleep(3)
    stack.kill_redis()
    time.sleep(3)
    stack.start_redis()
    stack.notes.append("redis restarted empty; the run is launched 5 s later")
    time.sleep(5)
    stack.ensure_worker(worker)
    run = launch(14, "idle")
    return [run], wait_finished(stack, [run], bound)


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


def open_transactions() -> str:
    """PostgreSQL sessions idle inside a transaction: what a frozen worker holds (locks too)."""
    if connection.vendor != "postgresql":
        return "(SQLite: not measured)"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'"
        )
        return str(cursor.fetchone()[0])  # type: ignore[index]


def worker_sigstop(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """One of two workers frozen (SIGSTOP) mid-run: the other must take its agents over once
    their lease runs out and finish the run while it is still frozen; then it is thawed
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
    lease = float(os.environ["HARNESS_AGENT_LEASE_S"])
    stack.notes.append(
        f"{held} agents running at the freeze; SIGCONT after "
        f"{time.monotonic() - (stack.fault_at or 0):.0f} s (lease {lease:.0f} s)"
    )
    # The thawed worker still believes it holds agents: give it time to try to finish them.
    time.sleep(lease)
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
    "prefork-child-kill-x3": (prefork_child_kill, 60),
    "worker-sigstop-past-lease": (worker_sigstop, 45),
    "new-db-old-redis": (new_db_old_redis, 40),
}


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
        checks = [check_run(pk) for pk in ids]
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
        duplicates=sum(c["duplicates"] for c in checks),
        overruns=sum(c["overruns"] for c in checks),
        recovery_s=None if recovery is None else round(recovery, 1),
        notes=stack.notes
        + [
            f"run {c['run']}: budget state rebuilt at check"
            for c in checks
            if c["budget_rebuilt_at_check"]
        ],
        problems=problems,
        ok=not problems and bool(checks),
    )
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
