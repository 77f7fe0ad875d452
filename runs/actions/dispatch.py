"""Dispatch: keep a run's agents flowing under its concurrency cap, and finish it.

Each function is one transaction that writes the change and its events together; Celery
enqueues happen only after commit. Every transition is a conditional UPDATE, so duplicate
deliveries and racing workers are harmless: exactly one caller wins each transition.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone
from opentelemetry.context import attach, detach, get_current

from agents.playbooks import REPORT_STEPS
from runs import allowances
from runs.actions import adaptive, enqueue
from runs.actions.paid import paid_many
from runs.actions.report_steps import start_next_report_step
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_event, record_events
from runs.models import Approval, Run, Task
from runs.observability.tracing import end_run_trace_after_commit, run_span

logger = logging.getLogger(__name__)

TERMINAL = Task.Status.terminal()
IN_FLIGHT = Task.Status.in_flight()
# Held agents moved to their approval gate per dispatch pass (each is a row and an event).
HOLD_PER_PASS = 1000
NOT_SUCCEEDED = [Task.Status.FAILED, Task.Status.SKIPPED, Task.Status.CANCELLED]


def schedule_dispatch(run_id: int) -> None:
    """Look at the run again once the current transaction commits (its message in the trace
    context current now, whichever thread runs the commit's callbacks)."""
    context = get_current()

    def request() -> None:
        token = attach(context)
        try:
            enqueue.request_dispatch(run_id)
        finally:
            detach(token)

    transaction.on_commit(request)


# -- dispatch -----------------------------------------------------------------------------------
def dispatch(run_id: int) -> list[int]:
    """Pull-based dispatch: keep at most ``max_concurrency`` tasks of the run in flight.

    Runs under the run's row lock (SELECT … FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
    transactions serialize writers), so two dispatchers never both fill the same free slots.
    Returns the ids it queued.
    """
    enqueue.dispatch_starting(run_id)
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
        with run_span(run, "dispatch") as span:
            queued = _fill_slots(run)
            span.set_attribute("harness.agents.queued", len(queued))
    return queued


def _fill_slots(run: Run) -> list[int]:
    """Queue the run's next ready tasks into its free slots (the caller holds the run's lock)."""
    queued: list[int] = []
    _skip_blocked(run)
    # An adaptive run's groups whose agents all ended by another way than success (failed,
    # skipped) or whose decision a crash lost: decided here, before the run can finish.
    adaptive.decide_groups(run)
    events: list[EventItem] = []
    # Agents held for approval go to their gate whether or not a slot is free: waiting there
    # takes no slot, so they must not use up this pass's free ones (the rest of a run whose
    # every agent is held would sit pending until the sweeper's next pass).
    for task in _ready(run).filter(needs_approval=True)[:HOLD_PER_PASS]:
        if task.move(Task.Move.HOLD):
            Approval.objects.create(
                run=run,
                gate=Approval.Gate.TASK,
                target_id=task.pk,
                target_label=f"{task.step}/{task.lens} {task.scope_label}"[:300],
            )
            events.append((EventType.APPROVAL_REQUESTED, {"gate": "task"}, task))
    in_flight = Task.objects.filter(run=run, status__in=IN_FLIGHT).count()
    free = run.max_concurrency - in_flight
    if free > 0:
        now = timezone.now()
        for task in _ready(run).filter(needs_approval=False)[:free]:
            if task.move(Task.Move.QUEUE, queued_at=now):
                queued.append(task.pk)
                events.append((EventType.TASK_QUEUED, {}, task))
    record_events(run, events)
    resent = _resend_stale(run)
    enqueue.agents_after_commit(queued + resent)
    _maybe_finish(run)
    if Task.objects.filter(run=run).exclude(status__in=TERMINAL).exists():
        run_id = run.pk
        transaction.on_commit(lambda: enqueue.arm_watchdog(run_id))
    return queued


# Runs whose tasks have dependency edges. Edges are made only when a run is planned, before any
# of its agents is dispatched, so the answer never changes once asked; agents and dispatch ask
# it per agent, and most runs have none (every agent independent). Keyed by the run's UUID, not
# its id: a database restored or reset under a live worker reuses ids.
_has_dependencies: dict[uuid.UUID, bool] = {}


def has_dependencies(run: Run) -> bool:
    known = _has_dependencies.get(run.uid)
    if known is None:
        known = Task.depends_on.through.objects.filter(from_task__run_id=run.pk).exists()
        if len(_has_dependencies) > 10_000:  # a long-lived worker sees many runs
            _has_dependencies.clear()
        _has_dependencies[run.uid] = known
    return known


def _ready(run: Run) -> QuerySet[Task]:
    """The run's pending tasks whose dependencies all succeeded, in dispatch order."""
    pending = Task.objects.filter(run_id=run.pk, status=Task.Status.PENDING)
    if has_dependencies(run):
        pending = pending.exclude(
            depends_on__status__in=[
                *NOT_SUCCEEDED,
                *IN_FLIGHT,
                Task.Status.PENDING,
                Task.Status.AWAITING_APPROVAL,
            ]
        )
    return pending.order_by("depth", "id")


def hand_over_slots(run: Run, events: list[EventItem], freed: int) -> tuple[list[int], bool]:
    """Give the ``freed`` slots that agents just freed straight to the run's next ready tasks,
    inside those agents' outcome transaction (the caller holds the run's lock and has checked
    it is running). One SELECT and one UPDATE per task instead of a dispatch round trip per
    agent: the next agents' messages go out on the same commit. Returns the ids to send, and
    whether a dispatch must still look (fewer ready than freed, or the next task waits at an
    approval gate)."""
    handed: list[int] = []
    now = timezone.now()
    for task in _ready(run)[:freed]:
        if task.needs_approval:
            return handed, True
        if task.move(Task.Move.QUEUE, queued_at=now):
            events.append((EventType.TASK_QUEUED, {}, task))
            handed.append(task.pk)
    return handed, len(handed) < freed


def _resend_stale(run: Run) -> list[int]:
    """Re-send the message of agents that look lost: queued but never started for too long (a
    dispatcher died between its commit and its publish), running with a heartbeat older than
    the lease (its worker died), or waiting to retry for longer than the lease (the worker that
    scheduled the retry died, or its delayed message was lost: retries wait at most a minute).
    Duplicates are harmless: claims are conditional and a live holder's heartbeat turns a
    duplicate away."""
    now = timezone.now()
    requeue_before = now - timedelta(seconds=settings.HARNESS_REQUEUE_AFTER_S)
    lease_before = now - timedelta(seconds=settings.HARNESS_AGENT_LEASE_S)
    stale = list(
        Task.objects.filter(run=run, queued_at__lt=requeue_before).filter(
            Q(status=Task.Status.QUEUED)
            | Q(
                status__in=[Task.Status.RUNNING, Task.Status.RETRYING],
                heartbeat_at__lt=lease_before,
            )
        )
    )
    if stale:
        # queued_at doubles as "last sent": each lost agent is re-sent once per period.
        Task.objects.filter(pk__in=[t.pk for t in stale]).update(queued_at=now)
        record_events(run, [(EventType.TASK_RESENT, {"was": t.status}, t) for t in stale])
    return [t.pk for t in stale]


def _stop_reason(run: Run) -> str:
    reasons: dict[str, str] = {
        Run.Status.BUDGET_EXHAUSTED: "budget exhausted",
        Run.Status.CANCELLED: "run cancelled",
        Run.Status.FAILED: "run failed",
    }
    return reasons.get(str(run.status), "run stopped")


def _stop_pending(run: Run, reason: str) -> int:
    """Skip (or cancel) every task that has not started, and every one waiting to retry: a
    stopped run runs nothing more, so a retry's delayed message (which a Redis restart or a
    worker's death may have lost) must not be what the run waits for. Running tasks finish on
    their own (or are taken over by the sweeper and then stopped). What the stopped tasks'
    earlier attempts paid is added to the run's totals."""
    cancelled = run.status == Run.Status.CANCELLED
    status = Task.Status.CANCELLED if cancelled else Task.Status.SKIPPED
    stoppable = [
        Task.Status.PENDING,
        Task.Status.QUEUED,
        Task.Status.AWAITING_APPROVAL,
        Task.Status.RETRYING,
    ]
    waiting = list(Task.objects.filter(run=run, status__in=stoppable))
    moved = Task.move_many(
        waiting,
        Task.Move.CANCEL if cancelled else Task.Move.SKIP,
        only_from=stoppable,
        error=reason,
        finished_at=timezone.now(),
        retry_at=None,
    )
    _add_paid(run, moved)
    record_events(run, [(EventType(f"task.{status}"), {"reason": reason}, t) for t in moved])
    return len(moved)


def _add_paid(run: Run, tasks: list[Task]) -> None:
    """Store what the calls of ``tasks`` (just ended) cost on them and add it to the run."""
    totals: dict[str, Any] = {}
    for task_id, (fields, run_totals) in paid_many(tasks).items():
        Task.objects.filter(pk=task_id).update(**fields)
        for name, value in run_totals.items():
            totals[name] = totals.get(name, 0) + value
    deltas = {name: F(name) + value for name, value in totals.items() if value}
    if deltas:
        Run.objects.filter(pk=run.pk).update(**deltas)


def _skip_blocked(run: Run) -> None:
    blocked = list(
        Task.objects.filter(
            run=run, status=Task.Status.PENDING, depends_on__status__in=NOT_SUCCEEDED
        ).distinct()
    )
    moved = Task.move_many(
        blocked,
        Task.Move.SKIP,
        only_from=[Task.Status.PENDING],
        error="a task it depends on did not succeed",
        finished_at=timezone.now(),
    )
    reason = "dependency did not succeed"
    record_events(run, [(EventType.TASK_SKIPPED, {"reason": reason}, t) for t in moved])


def _maybe_finish(run: Run) -> None:
    """When no task is left to run, apply the failure policy and start aggregation."""
    if Task.objects.filter(run=run).exclude(status__in=TERMINAL).exists():
        return
    run.refresh_from_db()
    if run.status in (Run.Status.RUNNING, Run.Status.BUDGET_EXHAUSTED):
        # What finished subtrees did not use goes back before the report's agents start.
        transaction.on_commit(lambda: allowances.close_all(run.pk))
    if run.status == Run.Status.RUNNING:
        verdict = _policy_verdict(run)
        if verdict:
            if run.transition(Run.Status.FAILED, verdict):
                record_event(run, EventType.RUN_FAILED, {"reason": verdict})
                end_run_trace_after_commit(run)
            return
        if start_next_report_step(run):
            schedule_dispatch(run.pk)
            return
        if run.transition(Run.Status.AGGREGATING):
            record_event(run, EventType.RUN_AGGREGATING, {})
            _schedule_aggregate(run.pk)
    elif run.status == Run.Status.BUDGET_EXHAUSTED and not run.reports.exists():
        _schedule_aggregate(run.pk)


def _schedule_aggregate(run_id: int) -> None:
    enqueue.after_commit(enqueue.AGGREGATE_RUN, run_id)


def _policy_verdict(run: Run) -> str:
    """Why the finished run fails under its playbook's failure policy ('' if it does not)."""
    playbook = run.resolved_playbook
    # The report's own agents never decide whether the run's work succeeded: without them the
    # report falls back to the deterministic steps.
    counts = (
        Task.objects.filter(run=run)
        .exclude(step__in=REPORT_STEPS)
        .aggregate(
            ok=Count("id", filter=Q(status=Task.Status.SUCCEEDED)),
            critical_failed=Count("id", filter=Q(status=Task.Status.FAILED, critical=True)),
            failed=Count("id", filter=Q(status=Task.Status.FAILED)),
        )
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
