"""The machinery of one fault-suite scenario (scripts/chaos_scenarios.py): the private Redis and
worker processes it breaks, launching runs, waiting, and the after-checks every scenario makes.

Import after ``django.setup()``: the checks read the models.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Count, Sum

from agents.budget import BudgetNotInitialized
from harness_site import devstack, localredis
from harness_site.testing.targets import make_target
from runs.actions import launch_run
from runs.models import Event, Finding, Run, Step, Task
from runs.run_budget import budget_for

ROOT = Path(__file__).resolve().parent.parent
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
        self.fault_wall: float | None = None  # the same moment on the wall clock
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
        self.fault_wall = self.fault_wall or time.time()
        self.notes.append(what)

    def start_worker(
        self,
        pool: str = "threads",
        concurrency: int = 8,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        n = len(self.workers) + 1
        log = DATA_DIR / f"worker-{n}.log"
        argv = devstack.worker_argv(f"chaos{n}@%h", concurrency, pool)
        with open(log, "ab") as out:
            # Own session: a SIGKILL/SIGSTOP of the group reaches the pool children too.
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                cwd=ROOT,
                env=devstack.child_env(extra_env),
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


def launch(
    files: int,
    name: str,
    latency_ms: int = 500,
    concurrency: int = 8,
    budget_usd: str = BUDGET_USD,
    **provider: Any,
) -> int:
    """A codebase audit of ``files`` identical modules, one file per agent (3 lenses each);
    ``provider``/``model`` keywords run it on a model server instead of the heuristic."""
    target = make_target(DATA_DIR / "targets", files, name)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        **provider,
        target_path=str(target),
        max_concurrency=concurrency,
        budget_usd=budget_usd,
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
    done = Task.objects.filter(run=run, status=Task.Status.SUCCEEDED)
    per_task = done.annotate(n=Count("findings")).values_list("lens", "n")
    for lens, n in per_task:
        counts.setdefault(lens, set()).add(n)
    return {lens: sorted(ns) for lens, ns in counts.items() if len(ns) > 1}


# How a task that used up its attempts on transient faults says so (runs/engine/worker.py).
GAVE_UP = "(gave up after"


# Why an agent of a run whose budget ran out was skipped (runs/actions/outcomes.py, dispatch).
BUDGET_SKIPPED = ("budget exhausted",)


def check_run(
    run_id: int,
    gave_up_ok: bool = False,
    budget_out: bool = False,
    fault_wall: float | None = None,
) -> dict[str, Any]:
    """The invariants: terminal, nothing lost or done twice, gap-free log, cost consistent.
    Reads the state as the faults left it: nothing is rebuilt or repaired before it is checked.

    ``gave_up_ok``: an agent that failed after using up its attempts on transient faults (the
    provider fault mix) is an accounted outcome, shown with its error, not a lost task.
    ``budget_out``: the run's budget is meant to run out: it must end budget-exhausted with its
    report, its agents succeeded or skipped for the budget. ``fault_wall``: when the first fault
    struck (wall clock): a run that had finished before it may have lost its budget state with a
    restarted Redis (rebuilt when something needs it again), one still working may not."""
    run = Run.objects.get(pk=run_id)
    problems: list[str] = []
    notes: list[str] = []
    tag = f"run {run.pk}"
    tasks = Task.objects.filter(run=run)
    by_status = dict(tasks.values_list("status").annotate(n=Count("id")).order_by())
    gave_up = tasks.filter(status=Task.Status.FAILED, error__contains=GAVE_UP)
    gave_up_n = gave_up.count() if gave_up_ok else 0
    unfinished = tasks.exclude(status=Task.Status.SUCCEEDED)
    if budget_out:
        unfinished = unfinished.exclude(
            status=Task.Status.SKIPPED, error__contains=BUDGET_SKIPPED[0]
        )
        if run.status != Run.Status.BUDGET_EXHAUSTED or run.finished_at is None:
            problems.append(f"{tag} ended {run.status} ({run.status_reason}), not budget-out")
        if not run.reports.exists():
            problems.append(f"{tag}: budget exhausted without a report")
    elif run.status != Run.Status.AWAITING_REVIEW:
        problems.append(f"{tag} ended {run.status} ({run.status_reason})")
    lost = (unfinished.exclude(pk__in=gave_up) if gave_up_ok else unfinished).count()
    if lost:
        problems.append(f"{tag}: tasks not succeeded by status {by_status}")
        errors = tasks.exclude(status=Task.Status.SUCCEEDED).values_list("error", flat=True)
        problems += [f"{tag}: a task's error: {e[:200]}" for e in sorted(set(errors))[:3]]
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
    # The product repairs a drifted run total itself (budget.reconciled): a drift is still a
    # bug, so the check counts each repair as one.
    for payload in Event.objects.filter(run=run, type="budget.reconciled").values_list(
        "payload", flat=True
    ):
        problems.append(f"{tag}: cost drifted from its paid calls and was reconciled: {payload}")
    steps = Step.objects.filter(task__run=run, kind="chat")
    n_steps = steps.count()
    steps_usd = steps.aggregate(c=Sum("cost_usd"))["c"] or 0
    all_steps_usd = Step.objects.filter(task__run=run).aggregate(c=Sum("cost_usd"))["c"] or 0
    # Steps store 6 decimals on PostgreSQL; SQLite keeps a priced call's full precision, so
    # the run's total (rounded on each update) may differ by under a micro-dollar per call.
    slack = Decimal(0)
    if connection.vendor == "sqlite":
        slack = Decimal("0.000001") * Step.objects.filter(task__run=run).count()
    if abs(run.cost_usd - Decimal(all_steps_usd)) > slack:
        problems.append(f"{tag}: settled cost {run.cost_usd} != steps {all_steps_usd}")
    limit = run.budget_usd if run.budget_usd is not None else Decimal(BUDGET_USD)
    overrun = int(run.cost_usd > limit)
    try:
        # As Redis holds it now, never rebuilt from the database first: a rebuilt state would
        # only repeat the steps' sum, and the comparison could not fail.
        state = budget_for(run).state()
    except BudgetNotInitialized:
        ended = run.finished_at.timestamp() if run.finished_at else None
        if ended is not None and fault_wall is not None and ended < fault_wall:
            notes.append(f"{tag} had finished before the fault: its budget state went with Redis")
        else:
            problems.append(f"{tag}: Redis holds no budget state for the run (lost, not rebuilt)")
    else:
        # Redis counts micro-USD per settle: one micro-dollar of rounding per call at most.
        if abs(state.spent_usd - float(steps_usd)) > 1e-6 * max(n_steps, 1):
            problems.append(f"{tag}: Redis spent {state.spent_usd} != steps {steps_usd}")
        overrun = overrun or int(state.spent_usd > float(limit) + 1e-9)
    if overrun:
        problems.append(f"{tag}: spent (run {run.cost_usd}) over budget {run.budget_usd}")
    return {
        "run": run.pk,
        "agents": tasks.count(),
        "findings": Finding.objects.filter(run=run).count(),
        "lost": lost,
        "gave_up": gave_up_n,
        "duplicates": twice + dup_findings,
        "overruns": overrun,
        "cost_usd": float(run.cost_usd),
        "notes": notes,
        "problems": problems,
    }
