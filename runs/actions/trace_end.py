"""The end of a stopped run's trace waits for its last agent.

A cancelled run (or one failed by fail-fast) is stopped at once, but agents in the middle of a
model call stop at their next step, up to a second or two later, and still pay for that call.
Its root span emitted at the cancel would say $0 and 0 tokens while those agents ran on after it:
so the root is emitted once no agent of the run is running any more (the late calls then counted
in its totals and inside its duration), or after ``SETTLE_S`` at most whatever happens.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from runs.actions import enqueue
from runs.models import Run, Task
from runs.observability.tracing import end_run_trace

logger = logging.getLogger(__name__)

SETTLE_S = 15.0  # far beyond the one step an in-flight agent takes to notice a cancel
CHECK_EVERY_S = 0.5


def end_trace_when_settled_after_commit(run: Run) -> None:
    run_id = run.pk

    def publish() -> None:
        try:
            enqueue.send(enqueue.END_RUN_TRACE, run_id, countdown=CHECK_EVERY_S)
        except Exception:  # the broker away: end the trace now rather than never
            logger.warning("run %s: ending its trace now (broker unavailable)", run_id)
            end_run_trace(run_id)

    transaction.on_commit(publish)


def end_trace_when_settled(run_id: int) -> float | None:
    """Emit the run's root span if no agent of it is running (or it has waited long enough);
    else the seconds until the next look."""
    run = Run.objects.filter(pk=run_id).only("finished_at").first()
    if run is None or run.finished_at is None:
        return None  # gone, or working again (resumed): its next end emits its trace
    running = Task.objects.filter(run_id=run_id, status=Task.Status.RUNNING).exists()
    if running and (timezone.now() - run.finished_at).total_seconds() < SETTLE_S:
        return CHECK_EVERY_S
    end_run_trace(run_id)
    return None
