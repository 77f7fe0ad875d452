"""Re-send the agents whose message is lost, across every run that is still working, whatever
its status (a budget-exhausted or cancelled run's agents must end too, or it never finishes).

A message is presumed lost when:

- the agent is running but its holder's process is gone (``harness_site.liveness``: its key
  stopped being refreshed): the holder is released and the agent re-sent, so the run's slot it
  takes is freed within seconds of the death, not when its lease of minutes ends;
- the agent waits to retry and its delayed message is overdue by more than a worker's TTL (the
  worker holding the delayed message died, or Redis lost it);
- Redis lost its state (restarted empty) or a worker died: every queued agent, and every
  retrying one (sent again with what is left of its delay), since their messages were in Redis
  or prefetched by that worker;
- otherwise a queued agent not started within ``HARNESS_REQUEUE_AFTER_S``.

A stopped run (budget exhausted, cancelled, failed) runs nothing more: its queued and retrying
agents are settled by its dispatch instead, which then finishes it. Duplicates are harmless:
claims are conditional, and a live holder turns a duplicate away.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from harness_site import liveness
from runs.actions import enqueue
from runs.actions.dispatch import dispatch
from runs.actions.outcomes import lock_run
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_events
from runs.models import Run, Task

logger = logging.getLogger(__name__)

STOPPED = (Run.Status.BUDGET_EXHAUSTED, Run.Status.CANCELLED, Run.Status.FAILED)


def resend_lost(*, redis_lost: bool = False) -> dict[int, int]:
    """Re-send (or, in a stopped run, settle) every agent whose message is presumed lost;
    returns run id → agents re-sent or settled (for the log and tests)."""
    now = timezone.now()
    working = Task.objects.filter(run__finished_at__isnull=True)
    running = list(
        working.filter(status=Task.Status.RUNNING)
        .exclude(holder="")
        .values_list("pk", "run_id", "holder")
    )
    gone = liveness.dead(holder for _, _, holder in running)
    orphans: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for pk, run_id, holder in running:
        if holder in gone:
            orphans[run_id].append((pk, holder))
    lost_all = redis_lost or bool(gone)
    why = "redis restarted" if redis_lost else "a worker died" if gone else ""
    grace = timedelta(seconds=settings.HARNESS_WORKER_TTL_S)
    if lost_all:
        waiting = Q(status=Task.Status.QUEUED, queued_at__lt=now) | Q(status=Task.Status.RETRYING)
    else:
        requeue_before = now - timedelta(seconds=settings.HARNESS_REQUEUE_AFTER_S)
        waiting = Q(status=Task.Status.QUEUED, queued_at__lt=requeue_before) | Q(
            status=Task.Status.RETRYING, retry_at__lt=now - grace
        )
    lost: dict[int, list[int]] = defaultdict(list)
    for pk, run_id in working.filter(waiting).values_list("pk", "run_id"):
        lost[run_id].append(pk)
    done: dict[int, int] = {}
    for run_id in sorted(set(orphans) | set(lost)):
        count = _resend_run(run_id, orphans.get(run_id, []), lost.get(run_id, []), why, now)
        if count:
            done[run_id] = count
    if done:
        logger.info("re-sent lost agents (%s): %s", why or "overdue", done)
    return done


def _resend_run(
    run_id: int, orphans: list[tuple[int, str]], lost: list[int], why: str, now: datetime
) -> int:
    """One run's re-sends, in one transaction under its lock (the claim's lock too)."""
    sends: list[tuple[int, float]] = []
    with transaction.atomic():
        run = lock_run(run_id)
        events: list[EventItem] = []
        for pk, holder in orphans:
            # Only if that same holder still has it: a claim may have taken it meanwhile.
            if Task.objects.filter(pk=pk, status=Task.Status.RUNNING, holder=holder).update(
                holder="", queued_at=now
            ):
                task = Task.objects.only("id", "run_id", "status").get(pk=pk)
                events.append(
                    (EventType.TASK_RESENT, {"was": "running", "why": "holder gone"}, task)
                )
                sends.append((pk, 0.0))
        stopped = run.status in STOPPED
        if not stopped:
            for task in Task.objects.filter(pk__in=lost).only("id", "run_id", "status", "retry_at"):
                countdown, note = _when(task, now, why)
                if task.status == Task.Status.QUEUED:
                    changed = Task.objects.filter(pk=task.pk, status=task.status).update(
                        queued_at=now
                    )
                else:
                    # Due now at the latest: the next loss of this message is seen a TTL later.
                    due = now + timedelta(seconds=countdown)
                    changed = Task.objects.filter(pk=task.pk, status=task.status).update(
                        retry_at=due
                    )
                if changed:
                    events.append((EventType.TASK_RESENT, {"was": task.status, "why": note}, task))
                    sends.append((task.pk, countdown))
        record_events(run, events)
        transaction.on_commit(lambda: _send(sends))
    if stopped and lost:
        # Its queued and retrying agents are settled, and the run finished, by its dispatch.
        dispatch(run_id)
    return len(sends) + (len(lost) if stopped else 0)


def _when(task: Task, now: datetime, why: str) -> tuple[float, str]:
    """How long until the re-sent message should run, and why it is re-sent."""
    if task.status != Task.Status.RETRYING:
        return 0.0, why or "not started in time"
    left = (task.retry_at - now).total_seconds() if task.retry_at else 0.0
    return max(0.0, left), why or "retry overdue"


def _send(sends: list[tuple[int, float]]) -> None:
    for pk, countdown in sends:
        enqueue.send(enqueue.RUN_AGENT, pk, countdown=countdown or None)
