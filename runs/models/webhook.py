"""Webhook subscriptions and their deliveries.

A subscription is a URL an administrator registered for some of the events in ``WebhookEvent``;
each event of a run that one of them wants becomes one ``WebhookDelivery`` per subscription,
sent and retried by Celery (``runs/actions/webhook_delivery.py``) and signed per the Standard
Webhooks spec (``runs/webhooks/signing.py``).

The signing secret is never stored: it is derived from ``SECRET_KEY`` and the subscription's
random ``salt`` whenever a delivery is signed, so a copy of the database alone cannot forge a
delivery. Rotating ``SECRET_KEY`` therefore changes every subscription's secret.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac

from runs.webhooks.signing import SECRET_PREFIX


class WebhookEvent(models.TextChoices):
    """What a subscription can ask for. The value is the ``type`` of the delivered message."""

    # The run stopped working: its report awaits review, it failed, it was cancelled, or its
    # budget ran out and the report of what finished is stored.
    RUN_FINISHED = "run.finished", "Run finished"
    RUN_FAILED = "run.failed", "Run failed"
    RUN_BUDGET_EXHAUSTED = "run.budget_exhausted", "Budget exhausted"
    RUN_AWAITING_REVIEW = "run.awaiting_review", "Report awaiting review"
    APPROVAL_REQUESTED = "approval.requested", "Approval requested"
    REPORT_DECIDED = "report.decided", "Report decided"
    # Sent only by an administrator's "Send test" on the subscription's page.
    TEST = "webhook.test", "Test message"


def new_salt() -> str:
    return secrets.token_hex(16)


class WebhookSubscription(models.Model):
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="WebhookEvent values this URL receives.")
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    # The secret is derived from SECRET_KEY and this salt (see the module's docstring); a new
    # salt is a new secret.
    salt = models.CharField(max_length=64, default=new_salt)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} → {self.url}"

    def secret(self) -> str:
        """The signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 bytes."""
        key = salted_hmac("runs.webhook.secret", self.salt, algorithm="sha256").digest()
        return SECRET_PREFIX + base64.b64encode(key).decode("ascii")

    def wants(self, kind: str) -> bool:
        return self.active and kind in self.events


class WebhookDelivery(models.Model):
    """One message to one subscription, with its attempts.

    Status: ``pending → sending → succeeded``; ``sending → retrying → sending …`` after a
    failure a retry can fix (network error, timeout, 408, 429, 5xx) until the attempts run
    out, then ``failed``; any other answer fails at once. An administrator can send a finished
    delivery again (``pending``). Every move out of ``pending``/``retrying`` is a conditional
    UPDATE, so a redelivered Celery message never sends twice at once.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        RETRYING = "retrying"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    # The message id (``webhook-id``): the same on every attempt, so a receiver can drop
    # duplicates.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=40, choices=WebhookEvent.choices)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The event announced (the first one, when several agent gates of one pass are announced
    # as one message); with ``kind`` it makes a fan-out repeated by Celery idempotent.
    event = models.ForeignKey(
        "runs.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # The last attempts, newest last: {"at", "code", "ms", "error"} each (capped).
    attempt_log = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event", "kind"],
                condition=models.Q(event__isnull=False),
                name="webhook_delivery_once_per_event",
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due")]

    def __str__(self) -> str:
        return f"{self.kind} → webhook {self.subscription_id}: {self.status}"

    @property
    def message_id(self) -> str:
        return f"msg_{self.uid.hex}"

    @property
    def can_resend(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.RETRYING)

    def log_attempt(self, entry: dict[str, Any], keep: int = 20) -> list[dict[str, Any]]:
        return [*self.attempt_log, entry][-keep:]
