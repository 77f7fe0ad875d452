from __future__ import annotations

from typing import Any

from django.db import transaction

from runs.actions.webhook_delivery import fan_out
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Run, WebhookDelivery, WebhookSubscription
from tests.runs.factories import make_run


def subscribe(url: str, events: list[str] | None = None, **fields: Any) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        url=url, events=events or ["run.failed", "run.finished"], **fields
    )


def failed_run_delivery(subscription: WebhookSubscription) -> WebhookDelivery:
    """A run that failed, its event announced and fanned out: the subscription's delivery."""
    run = make_run(status=Run.Status.RUNNING)
    with transaction.atomic():
        event = record_event(run, EventType.RUN_FAILED, {"reason": "a critical agent failed"})
    fan_out([[event.pk, ["run.failed"]]])
    return WebhookDelivery.objects.get(subscription=subscription, event=event, kind="run.failed")
