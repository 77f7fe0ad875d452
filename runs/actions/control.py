"""An operator's controls on a running run: cancel it, retry its failed agents."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from runs.actions import enqueue
from runs.actions.launch import check_provider
from runs.actions.launch_options import LaunchError
from runs.actions.trace_end import end_trace_when_settled_after_commit
from runs.actions.tries import new_try
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event, record_events
from runs.models import Run, Task
from runs.observability.tracing import begin_resume_trace, run_context


def cancel_run(run: Run, user: User) -> bool:
    """Stop queued agents from starting; running ones stop at their next step."""
    with transaction.atomic():
        if not run.transition(Run.Status.CANCELLED, f"cancelled by {user.get_username()}"):
            return False
        record_event(run, EventType.RUN_CANCELLED, {"by": user.get_username()})
        end_trace_when_settled_after_commit(run)  # after the agents still in a call
        unstarted = [
            Task.Status.PENDING,
            Task.Status.QUEUED,
            Task.Status.AWAITING_APPROVAL,
            Task.Status.RETRYING,
        ]
        moved = Task.move_many(
            list(Task.objects.filter(run=run, status__in=unstarted)),
            Task.Move.CANCEL,
            only_from=unstarted,
            error="run cancelled",
            finished_at=timezone.now(),
        )
        reason = "run cancelled"
        record_events(run, [(EventType.TASK_CANCELLED, {"reason": reason}, t) for t in moved])
    return True


class RetryRefused(ValueError):
    """A retry that would fail the same way: its message says what to fix first."""


def retry_failed(run: Run, user: User) -> int:
    """Put failed agents back in the queue (fresh attempts) and resume the run. Refused, changing
    nothing, while a provider of those agents is not configured (its key unset): they would only
    fail again on it."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        failed = list(Task.objects.filter(run=run, status=Task.Status.FAILED))
        if not failed:
            return 0
        for provider in sorted({t.provider or run.provider for t in failed}):
            try:
                check_provider(provider)
            except LaunchError as exc:
                raise RetryRefused(str(exc)) from None
        if run.status != Run.Status.RUNNING and not run.transition(
            Run.Status.RUNNING, f"retry requested by {user.get_username()}"
        ):
            return 0
        moved = new_try(run, failed, Task.Status.FAILED)
        begin_resume_trace(run)  # before the dispatch below: it carries the run's new trace
        record_events(
            run,
            [(EventType.RUN_RESUMED, {"by": user.get_username(), "retrying": len(moved)}, None)]
            + [(EventType.TASK_RETRY_REQUESTED, {}, t) for t in moved],
        )
        enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(run))
    return len(moved)
