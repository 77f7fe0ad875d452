"""An administrator's changes to webhook subscriptions, and sending a delivery again.

A URL is checked when it is saved (``runs/webhooks/addresses.py``: http(s) only, and no
loopback, private or link-local address unless ``HARNESS_WEBHOOK_ALLOWED_NETWORKS`` allows it),
so a refused one is said at once with the reason and nothing is saved; every attempt checks it
again. The signing secret is shown to the administrator when it is made (creation, rotation)
and derived again at each signature, never stored (``runs/models/webhook.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from agents.wording import noun
from runs.actions import enqueue, webhook_delivery
from runs.models import WebhookDelivery, WebhookEvent, WebhookSubscription
from runs.models.webhook import new_salt
from runs.webhooks.addresses import AddressRefused, check_url, parse_networks

_D = WebhookDelivery.Status
SUBSCRIBABLE = [kind for kind in WebhookEvent.values if kind != WebhookEvent.TEST]


class WebhookRefused(Exception):
    """A subscription change that cannot be made; the message says why (nothing changed)."""


def _checked(url: str, events: Iterable[str]) -> tuple[str, list[str]]:
    url = url.strip()
    chosen = [kind for kind in SUBSCRIBABLE if kind in set(events)]
    unknown = sorted(set(events) - set(SUBSCRIBABLE))
    if unknown:
        raise WebhookRefused(f"Unknown {noun(len(unknown), 'event')}: {', '.join(unknown)}.")
    if not chosen:
        raise WebhookRefused("Choose at least one event.")
    if len(url) > 2000:
        raise WebhookRefused("The URL is longer than 2,000 characters.")
    allowed = parse_networks(settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS)
    try:
        check_url(url, allowed, webhook_delivery.resolver)
    except AddressRefused as exc:
        raise WebhookRefused(str(exc)) from None
    return url, chosen


def create_subscription(
    user: User, url: str, events: Iterable[str], description: str = ""
) -> tuple[WebhookSubscription, str]:
    """Save a subscription; returns it and its signing secret (to show once)."""
    url, chosen = _checked(url, events)
    subscription = WebhookSubscription.objects.create(
        url=url, events=chosen, description=description.strip()[:200], created_by=user
    )
    return subscription, subscription.secret()


def update_subscription(
    subscription: WebhookSubscription,
    url: str,
    events: Iterable[str],
    description: str,
    active: bool,
) -> None:
    url, chosen = _checked(url, events)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        url=url, events=chosen, description=description.strip()[:200], active=active
    )


def rotate_secret(subscription: WebhookSubscription) -> str:
    """A new signing secret (the old one stops verifying at once); returns it to show once."""
    subscription.salt = new_salt()
    subscription.save(update_fields=["salt"])
    return subscription.secret()


def delete_subscription(subscription: WebhookSubscription) -> None:
    subscription.delete()  # its deliveries with it


def resend(delivery: WebhookDelivery) -> bool:
    """Send a finished (or waiting) delivery again now, with fresh attempts; False when it is
    being sent or already waits to be."""
    with transaction.atomic():
        moved = WebhookDelivery.objects.filter(
            pk=delivery.pk, status__in=[_D.SUCCEEDED, _D.FAILED, _D.RETRYING]
        ).update(status=_D.PENDING, attempts=0, error="", next_attempt_at=timezone.now())
        if moved:
            enqueue.after_commit(enqueue.DELIVER_WEBHOOK, delivery.pk)
    return bool(moved)


def send_test(subscription: WebhookSubscription, user: User) -> WebhookDelivery:
    """A ``webhook.test`` message to the subscription, to check the receiver and its secret."""
    details = {"subscription": subscription.pk, "by": user.get_username()}
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            subscription=subscription,
            kind=WebhookEvent.TEST,
            payload=webhook_delivery.message(WebhookEvent.TEST, None, None, details),
        )
        enqueue.after_commit(enqueue.DELIVER_WEBHOOK, delivery.pk)
    return delivery
