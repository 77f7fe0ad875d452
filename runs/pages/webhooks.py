"""The webhooks pages (administrators): subscriptions with how their deliveries went, and one
subscription's deliveries."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from runs.models import WebhookDelivery, WebhookEvent, WebhookSubscription

DELIVERIES_SHOWN = 50
_D = WebhookDelivery.Status


def subscriptions_context() -> dict[str, Any]:
    subscriptions = WebhookSubscription.objects.annotate(
        sent=Count("deliveries", filter=Q(deliveries__status=_D.SUCCEEDED)),
        failed=Count("deliveries", filter=Q(deliveries__status=_D.FAILED)),
        waiting=Count(
            "deliveries", filter=Q(deliveries__status__in=[_D.PENDING, _D.SENDING, _D.RETRYING])
        ),
    ).select_related("created_by")
    return {"subscriptions": list(subscriptions), "labels": dict(WebhookEvent.choices)}


def subscription_context(subscription: WebhookSubscription) -> dict[str, Any]:
    deliveries = subscription.deliveries.select_related("run").order_by("-created_at", "-id")
    return {
        "subscription": subscription,
        "deliveries": list(deliveries[:DELIVERIES_SHOWN]),
        "total": subscription.deliveries.count(),
        "shown": DELIVERIES_SHOWN,
        "labels": dict(WebhookEvent.choices),
    }
