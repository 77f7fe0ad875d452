"""Finished deliveries are kept for HARNESS_WEBHOOK_KEEP_DAYS, then the sweep deletes them: the
table would otherwise grow with every event of every run for ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.actions.webhook_delivery import prune_finished
from runs.models import WebhookDelivery
from tests.webhooks.helpers import subscribe

pytestmark = pytest.mark.django_db

_D = WebhookDelivery.Status


def _delivery(subscription: Any, status: str, age_days: float) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        subscription=subscription,
        kind="run.finished",
        status=status,
        created_at=timezone.now() - timedelta(days=age_days),
    )


def test_only_finished_deliveries_past_the_retention_are_deleted(settings: Any) -> None:
    settings.HARNESS_WEBHOOK_KEEP_DAYS = 30
    sub = subscribe("https://hooks.example.com/in")
    old_ok = _delivery(sub, _D.SUCCEEDED, 31)
    old_failed = _delivery(sub, _D.FAILED, 40)
    # Still being tried, however old: deleting it would lose a message.
    old_retrying = _delivery(sub, _D.RETRYING, 45)
    old_pending = _delivery(sub, _D.PENDING, 45)
    recent = _delivery(sub, _D.SUCCEEDED, 29)

    assert prune_finished() == 2

    left = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert left == {old_retrying.pk, old_pending.pk, recent.pk}
    assert old_ok.pk not in left and old_failed.pk not in left


def test_a_retention_of_zero_keeps_every_delivery(settings: Any) -> None:
    settings.HARNESS_WEBHOOK_KEEP_DAYS = 0
    sub = subscribe("https://hooks.example.com/in")
    _delivery(sub, _D.SUCCEEDED, 400)
    assert prune_finished() == 0
    assert WebhookDelivery.objects.count() == 1


def test_pruning_deletes_in_bounded_batches(settings: Any) -> None:
    settings.HARNESS_WEBHOOK_KEEP_DAYS = 1
    sub = subscribe("https://hooks.example.com/in")
    for _ in range(5):
        _delivery(sub, _D.SUCCEEDED, 3)
    assert prune_finished(limit=3) == 3
    assert prune_finished(limit=3) == 2
    assert WebhookDelivery.objects.count() == 0
