"""Work handed to the Celery workers, always after the commit of the change that caused it.

Tasks are sent by name: ``runs.tasks`` calls these actions, so importing it here would make a
cycle. The names are the contract between the two sides and live only here and in
``runs/tasks.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from opentelemetry.context import Context, attach, detach, get_current

from harness_site.celery import app
from harness_site.redis_client import get_redis

logger = logging.getLogger(__name__)

PLAN_RUN = "runs.plan_run"
DISPATCH_RUN = "runs.dispatch_run"
RUN_AGENT = "runs.run_agent"
AGGREGATE_RUN = "runs.aggregate_run"
DELIVER_WEBHOOK = "runs.deliver_webhook"
END_RUN_TRACE = "runs.end_run_trace"


# The producer of this thread's open ``batched`` block, if any.
_publishing = threading.local()


def send(name: str, object_id: int, *, countdown: float | None = None) -> None:
    """Publish now (outside any transaction, or from an on_commit callback); inside ``batched``,
    with the messages sent next to it in one broker round trip."""
    producer = getattr(_publishing, "producer", None)
    app.send_task(name, args=[object_id], countdown=countdown, producer=producer)


@contextmanager
def batched() -> Iterator[None]:
    """The messages this thread sends inside go to the broker together when it ends: kombu's
    producer batch, one Redis pipeline (one round trip) instead of one LPUSH per message. Each
    message is still built and traced by Celery as when sent alone. A failure leaves their
    delivery uncertain; the caller sends them again (a second delivery is harmless)."""
    if getattr(_publishing, "producer", None) is not None:  # already inside one
        yield
        return
    with app.producer_or_acquire() as producer:
        _publishing.producer = producer
        try:
            with producer.batch():
                yield
        finally:
            _publishing.producer = None


def after_commit(name: str, object_id: int, *, context: Context | None = None) -> None:
    """Publish once the current transaction commits. ``context`` (the run's trace, for a
    publish from a web request) is what Celery's instrumentation, when on, carries in the
    message headers; in a worker or a launch the current span already is one of the run's."""

    def publish() -> None:
        token = attach(context) if context is not None else None
        try:
            send(name, object_id)
        finally:
            if token is not None:
                detach(token)

    transaction.on_commit(publish)


def agents_after_commit(task_ids: Iterable[int]) -> None:
    """Send the agents once the current transaction commits, in the trace context current now
    (the agent whose outcome freed their slots), whichever thread runs the commit's callbacks."""
    ids = list(task_ids)
    context = get_current()

    def send_all() -> None:
        token = attach(context)
        try:
            try:
                with batched():
                    for task_id in ids:
                        send(RUN_AGENT, task_id)
            except Exception as exc:  # any broker failure: send them one by one
                # Some may have gone out: a duplicate message loses its claim, a lost one would
                # wait for the dispatcher's re-send.
                logger.warning("a batch of %d agents' messages failed (%s)", len(ids), exc)
                for task_id in ids:
                    send(RUN_AGENT, task_id)
        finally:
            detach(token)

    if ids:
        transaction.on_commit(send_all)


# While a dispatch of a run is pending, further requests send nothing: one dispatch fills every
# free slot, so a hundred agents finishing at once cost one dispatch, not a hundred. The key
# expires on its own, so a lost message delays the run by this much at worst.
DISPATCH_PENDING_S = 10


def _pending_key(run_id: int) -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}dispatch-pending:{run_id}"


def request_dispatch(run_id: int) -> None:
    """Send a dispatch of the run unless one is already waiting to start."""
    if get_redis().set(_pending_key(run_id), 1, nx=True, ex=DISPATCH_PENDING_S):
        send(DISPATCH_RUN, run_id)


def dispatch_starting(run_id: int) -> None:
    """Called by dispatch before it reads anything: a change committed from now on asks again."""
    get_redis().delete(_pending_key(run_id))


def arm_watchdog(run_id: int) -> None:
    """At most one pending watchdog dispatch per run (a Redis key with the same lifetime), so a
    run whose last message was lost still gets looked at."""
    delay = settings.HARNESS_WATCHDOG_S
    key = f"{settings.HARNESS_REDIS_PREFIX}watchdog:{run_id}"
    if get_redis().set(key, 1, nx=True, px=int(delay * 1000)):
        send(DISPATCH_RUN, run_id, countdown=delay)
