"""Liveness that does not depend on any one message.

Every message that moves a run on (plan, dispatch, an agent, aggregate, the watchdog's delayed
dispatch) can be lost: a worker killed with messages unacknowledged (they come back only after
the broker's visibility timeout), a Redis restart that drops what was queued or delayed. Each
``HARNESS_SWEEP_S`` ``sweep`` looks at the database instead:

1. agents whose message is lost are re-sent, or settled in a stopped run, in every working run
   whatever its status (``runs.actions.resend``): a dead worker's agents within
   ``HARNESS_WORKER_TTL_S``, every queued and retrying agent once Redis lost its state;
2. every working run that has recorded nothing for ``HARNESS_STALL_S`` is moved on by what its
   status needs: planned again, dispatched (which also finishes a run with nothing left, a
   budget-exhausted one included) or aggregated;
3. every working run's totals are reconciled with its paid calls (``runs.actions.reconcile``).

Each of those is idempotent, so a sweep of a healthy run changes nothing. Webhook deliveries
whose message was lost are sent again the same way (``webhook_delivery.resend_overdue``), and
finished ones past ``HARNESS_WEBHOOK_KEEP_DAYS`` are deleted (``webhook_delivery.prune_finished``).
``runs.engine.sweeper`` runs it in the workers, one at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from harness_site import liveness
from runs.actions import enqueue, webhook_delivery
from runs.actions.dispatch import dispatch
from runs.actions.reconcile import reconcile
from runs.actions.resend import resend_lost
from runs.models import Event, Run

logger = logging.getLogger(__name__)


def stalled_runs() -> list[Run]:
    """Active runs whose last event is older than ``HARNESS_STALL_S`` (or that have none)."""
    quiet_since = timezone.now() - timedelta(seconds=settings.HARNESS_STALL_S)
    # The run's newest event is the one at its last_seq: one index lookup, not a scan.
    newest = Event.objects.filter(run_id=OuterRef("pk"), seq=OuterRef("last_seq"))
    runs = (
        Run.objects.active()
        .annotate(last_event=Subquery(newest.values("created_at")[:1]))
        .only("id", "status", "created_at", "last_seq")
    )
    return [
        run
        for run in runs
        if (run.last_event or run.created_at) < quiet_since  # type: ignore[attr-defined]
    ]


def sweep() -> dict[int, str]:
    """One sweep; returns stalled run id → what was done to it (for the log and tests)."""
    resend_lost(redis_lost=liveness.redis_lost_state())
    done: dict[int, str] = {}
    for run in stalled_runs():
        if run.status in (Run.Status.PENDING, Run.Status.PLANNING):
            enqueue.send(enqueue.PLAN_RUN, run.pk)
            done[run.pk] = "planned again"
        elif run.status == Run.Status.AGGREGATING:
            enqueue.send(enqueue.AGGREGATE_RUN, run.pk)
            done[run.pk] = "aggregated again"
        else:  # running, or stopping (budget exhausted, cancelled) with agents left
            dispatch(run.pk)
            done[run.pk] = "dispatched"
    if done:
        logger.info("sweep moved on %d stalled run(s): %s", len(done), done)
    for run_id in Run.objects.active().values_list("pk", flat=True):
        reconcile(run_id)
    resent = webhook_delivery.resend_overdue()
    if resent:
        logger.info("sweep sent %d overdue webhook deliver(y/ies) again", resent)
    pruned = webhook_delivery.prune_finished()
    if pruned:
        logger.info("sweep deleted %d webhook deliver(y/ies) past their retention", pruned)
    return done
