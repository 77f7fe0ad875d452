"""State changes of the machine's side: plan, dispatch, complete, fail, spawn, finish.

Each function is one transaction that writes the change and its events together; Celery
enqueues happen only after commit. Every transition is a conditional UPDATE, so duplicate
deliveries and racing workers are harmless: exactly one caller wins each transition.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from agents.decompose import TaskSpec
from agents.playbooks import Playbook
from runs.events import record_event, record_events
from runs.models import Approval, Run, Task

logger = logging.getLogger(__name__)

TERMINAL = Task.Status.terminal()
IN_FLIGHT = Task.Status.in_flight()
NOT_SUCCEEDED = [Task.Status.FAILED, Task.Status.SKIPPED, Task.Status.CANCELLED]


def _enqueue(task_ids: list[int]) -> None:
    from agents.tasks import run_agent

    for task_id in task_ids:
        run_agent.delay(task_id)


def _schedule_dispatch(run_id: int) -> None:
    from agents.tasks import dispatch_run

    transaction.on_commit(lambda: dispatch_run.delay(run_id))


# -- planning -----------------------------------------------------------------------------------
def create_planned_tasks(run: Run, playbook: Playbook, specs: list[TaskSpec]) -> int:
    """Create the planned root tasks (idempotent: a re-plan after a crash creates nothing new)
    and move the run to running. Returns the number of tasks created."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status != Run.Status.PLANNING:
            return 0
        existing = set(Task.objects.filter(run=run).values_list("key", flat=True))
        new = [s for s in specs if s.key not in existing]
        tasks = [_task_from_spec(run, playbook, spec) for spec in new]
        Task.objects.bulk_create(tasks)
        by_key = {t.key: t for t in Task.objects.filter(run=run)}
        through = Task.depends_on.through
        links = [
            through(from_task_id=by_key[s.key].pk, to_task_id=by_key[dep].pk)
            for s in new
            for dep in s.depends_on
        ]
        through.objects.bulk_create(links)
        Run.objects.filter(pk=run.pk).update(tasks_total=len(by_key))
        run.tasks_total = len(by_key)
        record_events(
            run,
            [
                (
                    "task.created",
                    {
                        "key": t.key[:12],
                        "step": t.step,
                        "lens": t.lens,
                        "scope": t.scope_label,
                        "why": t.why,
                        "parent": None,
                    },
                    by_key[t.key],
                )
                for t in tasks
            ],
        )
        run.transition(Run.Status.RUNNING)
        record_event(run, "run.running", {"tasks": len(by_key)})
        _schedule_dispatch(run.pk)
    return len(new)


def _task_from_spec(
    run: Run, playbook: Playbook, spec: TaskSpec, *, parent: Task | None = None
) -> Task:
    role = playbook.roles.get(spec.role) or next(iter(playbook.roles.values()))
    return Task(
        run=run,
        parent=parent,
        depth=(parent.depth + 1) if parent else 0,
        key=spec.key,
        step=spec.step,
        role=role.role,
        lens=spec.lens,
        scope=spec.scope,
        scope_label=spec.scope_label[:300],
        why=spec.why[:500],
        provider=role.provider or run.provider,
        model=role.model or run.model,
        critical=role.critical,
        needs_approval=role.needs_approval,
    )


# -- dispatch -----------------------------------------------------------------------------------
def dispatch(run_id: int) -> list[int]:
    """Pull-based dispatch: keep at most ``max_concurrency`` tasks of the run in flight.

    Runs under the run's row lock (SELECT … FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
    transactions serialize writers), so two dispatchers never both fill the same free slots.
    Returns the ids it queued.
    """
    queued: list[int] = []
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:  # deleted, or a stale message from another database
            return []
        if run.status in (Run.Status.BUDGET_EXHAUSTED, Run.Status.CANCELLED, Run.Status.FAILED):
            _stop_pending(run, reason=_stop_reason(run))
            _maybe_finish(run)
            return []
        if run.status != Run.Status.RUNNING:
            return []
        _skip_blocked(run)
        in_flight = Task.objects.filter(run=run, status__in=IN_FLIGHT).count()
        free = run.max_concurrency - in_flight
        if free > 0:
            ready = list(
                Task.objects.filter(run=run, status=Task.Status.PENDING)
                .exclude(
                    depends_on__status__in=[
                        *NOT_SUCCEEDED,
                        *IN_FLIGHT,
                        Task.Status.PENDING,
                        Task.Status.AWAITING_APPROVAL,
                    ]
                )
                .order_by("depth", "id")[:free]
            )
            events: list[tuple[str, dict[str, Any], Task | None]] = []
            now = timezone.now()
            for task in ready:
                if task.needs_approval:
                    if task.move(Task.Status.AWAITING_APPROVAL, allowed_from=[Task.Status.PENDING]):
                        Approval.objects.create(
                            run=run,
                            gate=Approval.Gate.TASK,
                            target_id=task.pk,
                            target_label=f"{task.step}/{task.lens} {task.scope_label}"[:300],
                        )
                        events.append(("approval.requested", {"gate": "task"}, task))
                    continue
                if task.move(Task.Status.QUEUED, allowed_from=[Task.Status.PENDING], queued_at=now):
                    queued.append(task.pk)
                    events.append(("task.queued", {}, task))
            record_events(run, events)
        resent = _resend_stale(run)
        if queued or resent:
            transaction.on_commit(lambda: _enqueue(queued + resent))
        _maybe_finish(run)
        if Task.objects.filter(run=run).exclude(status__in=TERMINAL).exists():
            transaction.on_commit(lambda: _arm_watchdog(run_id))
    return queued


def _resend_stale(run: Run) -> list[int]:
    """Re-send the message of agents that look lost: queued but never started for too long (a
    dispatcher died between its commit and its publish), or running with a heartbeat older than
    the lease (its worker died). Duplicates are harmless: claims are conditional and a live
    holder's heartbeat turns a duplicate away."""
    now = timezone.now()
    requeue_before = now - timedelta(seconds=settings.HARNESS_REQUEUE_AFTER_S)
    lease_before = now - timedelta(seconds=settings.HARNESS_AGENT_LEASE_S)
    stale = list(
        Task.objects.filter(run=run, queued_at__lt=requeue_before).filter(
            Q(status=Task.Status.QUEUED)
            | Q(status=Task.Status.RUNNING, heartbeat_at__lt=lease_before)
        )
    )
    if stale:
        # queued_at doubles as "last sent": each lost agent is re-sent once per period.
        Task.objects.filter(pk__in=[t.pk for t in stale]).update(queued_at=now)
        record_events(run, [("task.resent", {"was": t.status}, t) for t in stale])
    return [t.pk for t in stale]


def _arm_watchdog(run_id: int) -> None:
    """At most one pending watchdog dispatch per run (a Redis key with the same lifetime), so a
    run whose last message was lost still gets looked at."""
    from agents.tasks import dispatch_run
    from harness_site.redis_client import get_redis

    delay = settings.HARNESS_WATCHDOG_S
    key = f"{settings.HARNESS_REDIS_PREFIX}watchdog:{run_id}"
    if get_redis().set(key, 1, nx=True, px=int(delay * 1000)):
        dispatch_run.apply_async((run_id,), countdown=delay)


def _stop_reason(run: Run) -> str:
    reasons: dict[str, str] = {
        Run.Status.BUDGET_EXHAUSTED: "budget exhausted",
        Run.Status.CANCELLED: "run cancelled",
        Run.Status.FAILED: "run failed",
    }
    return reasons.get(str(run.status), "run stopped")


def _stop_pending(run: Run, reason: str) -> int:
    """Skip (or cancel) every task that has not started. In-flight tasks finish on their own."""
    status = Task.Status.CANCELLED if run.status == Run.Status.CANCELLED else Task.Status.SKIPPED
    waiting = list(
        Task.objects.filter(
            run=run,
            status__in=[Task.Status.PENDING, Task.Status.QUEUED, Task.Status.AWAITING_APPROVAL],
        )
    )
    moved = [
        t
        for t in waiting
        if t.move(
            status,
            allowed_from=[Task.Status.PENDING, Task.Status.QUEUED, Task.Status.AWAITING_APPROVAL],
            error=reason,
            finished_at=timezone.now(),
        )
    ]
    if moved:
        Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + len(moved))
        record_events(run, [(f"task.{status}", {"reason": reason}, t) for t in moved])
    return len(moved)


def _skip_blocked(run: Run) -> None:
    blocked = list(
        Task.objects.filter(
            run=run, status=Task.Status.PENDING, depends_on__status__in=NOT_SUCCEEDED
        ).distinct()
    )
    moved = [
        t
        for t in blocked
        if t.move(
            Task.Status.SKIPPED,
            allowed_from=[Task.Status.PENDING],
            error="a task it depends on did not succeed",
            finished_at=timezone.now(),
        )
    ]
    if moved:
        Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + len(moved))
        record_events(
            run, [("task.skipped", {"reason": "dependency did not succeed"}, t) for t in moved]
        )


def _maybe_finish(run: Run) -> None:
    """When no task is left to run, apply the failure policy and start aggregation."""
    if Task.objects.filter(run=run).exclude(status__in=TERMINAL).exists():
        return
    run.refresh_from_db()
    if run.status == Run.Status.RUNNING:
        verdict = _policy_verdict(run)
        if verdict:
            if run.transition(Run.Status.FAILED, verdict):
                record_event(run, "run.failed", {"reason": verdict})
            return
        if run.transition(Run.Status.AGGREGATING):
            record_event(run, "run.aggregating", {})
            _schedule_aggregate(run.pk)
    elif run.status == Run.Status.BUDGET_EXHAUSTED and not run.reports.exists():
        _schedule_aggregate(run.pk)


def _schedule_aggregate(run_id: int) -> None:
    from agents.tasks import aggregate_run

    transaction.on_commit(lambda: aggregate_run.delay(run_id))


def _policy_verdict(run: Run) -> str:
    """Why the finished run fails under its playbook's failure policy ('' if it does not)."""
    playbook = Playbook.from_config(run.config)
    counts = Task.objects.filter(run=run).aggregate(
        ok=Count("id", filter=Q(status=Task.Status.SUCCEEDED)),
        critical_failed=Count("id", filter=Q(status=Task.Status.FAILED, critical=True)),
        failed=Count("id", filter=Q(status=Task.Status.FAILED)),
    )
    if counts["critical_failed"]:
        return "a critical agent failed"
    if playbook.failure.mode == "fail_fast" and counts["failed"]:
        return "an agent failed (fail-fast policy)"
    if playbook.failure.mode == "quorum" and counts["ok"] < playbook.failure.quorum:
        return f"only {counts['ok']} agents succeeded; the quorum is {playbook.failure.quorum}"
    if counts["ok"] == 0:
        return "no agent succeeded"
    return ""
