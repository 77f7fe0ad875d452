"""Committed events → webhooks: which events of the log are announced outside, and the hand-off.

``record_events`` asks ``webhook_kinds`` about each event it writes whose type is in ``HOOKED``
(a set lookup: agents' own events, the bulk of the log, cost nothing more), and the events that
have kinds are handed, after commit, to one Celery message (``WEBHOOK_EVENTS``) for the whole
transaction. The worker that takes it finds the subscriptions that want each kind, records one
delivery per subscription and sends them (``runs/actions/webhook_delivery.py``). Nothing here
reads a subscription or opens a connection: a receiver, slow or down, is never on a run's path,
and a failed publish (Redis away) only loses the announcement, with a warning.

Vocabulary (``WebhookEvent``): ``run.finished`` whenever the run stops working and waits for a
person (its report awaits review, it failed, it was cancelled, or its budget ran out and the
report of what finished is stored); ``run.failed``; ``run.budget_exhausted`` (when it runs
out, before that report); ``run.awaiting_review``; ``approval.requested`` (a report, budget or
agent gate opened; the agent gates one dispatch pass opens are one message); ``report.decided``
(approved, rejected, or changes requested at the report gate).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from harness_site.celery import app
from runs.eventlog.event_types import EventType
from runs.models import Run, WebhookEvent

logger = logging.getLogger(__name__)

# The Celery task (registered in runs/tasks.py) that turns announced events into deliveries.
WEBHOOK_EVENTS = "runs.webhook_events"

_W = WebhookEvent
_ALWAYS: dict[str, tuple[str, ...]] = {
    EventType.RUN_FAILED: (_W.RUN_FAILED, _W.RUN_FINISHED),
    EventType.RUN_CANCELLED: (_W.RUN_FINISHED,),
    EventType.RUN_AWAITING_REVIEW: (_W.RUN_AWAITING_REVIEW, _W.RUN_FINISHED),
    EventType.BUDGET_EXHAUSTED: (_W.RUN_BUDGET_EXHAUSTED,),
    EventType.APPROVAL_REQUESTED: (_W.APPROVAL_REQUESTED,),
    EventType.RUN_APPROVED: (_W.REPORT_DECIDED,),
    EventType.RUN_REJECTED: (_W.REPORT_DECIDED,),
}
HOOKED = frozenset({*_ALWAYS, EventType.APPROVAL_CHANGES_REQUESTED, EventType.REPORT_CREATED})

# (event id, webhook kinds) for one announced event.
Announced = tuple[int, list[str]]


def webhook_kinds(run: Run, type: str, payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The webhook kinds an event about to be written announces (read before commit, from the
    run as the writer holds it)."""
    if type in _ALWAYS:
        return _ALWAYS[type]
    if type == EventType.APPROVAL_CHANGES_REQUESTED and payload.get("gate") == "report":
        return (_W.REPORT_DECIDED,)
    if type == EventType.REPORT_CREATED and (
        run.status == Run.Status.BUDGET_EXHAUSTED and run.finished_at is None
    ):
        # The report of a run whose budget ran out: the run stops working now (its status
        # stays budget_exhausted, so no status event says so). A later re-aggregation of the
        # same run finds finished_at set and announces nothing.
        return (_W.RUN_FINISHED,)
    return ()


def announce(items: list[Announced]) -> None:
    """Hand committed events to the webhook fan-out (from an on_commit callback). Never raises:
    the run's commit is done, and its other callbacks must still run."""
    try:
        app.send_task(WEBHOOK_EVENTS, args=[items])
    except Exception:
        logger.warning("webhook announcement of %d event(s) could not be queued", len(items))
