"""Webhook deliveries: from announced events to signed POSTs, with retries.

``fan_out`` runs in a worker on the events a run's commit announced (``runs/eventlog/hooks.py``):
it builds each message once, records one ``WebhookDelivery`` per subscription that wants it
(unique per subscription, event and kind, so a repeated Celery message records nothing twice)
and sends them. ``attempt`` makes one attempt: it claims the delivery by a conditional UPDATE,
checks the URL's addresses again (``runs/webhooks/addresses.py``), signs and POSTs with short
timeouts, and records the answer; a failure a retry can fix (no answer, 408, 429, 5xx) is tried
again after ``backoff(n)`` until ``HARNESS_WEBHOOK_MAX_ATTEMPTS``, any other answer fails at once.
Nothing here runs inside a run's transaction, so a receiver that is down or slow costs a worker
thread for at most the timeout and never holds a run up.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from runs.actions import enqueue
from runs.eventlog.event_types import EventType
from runs.models import Event, Run, WebhookDelivery, WebhookEvent, WebhookSubscription
from runs.observability.counters import counters
from runs.webhooks.addresses import AddressRefused, check_url, parse_networks, system_resolver
from runs.webhooks.http import Answer, post
from runs.webhooks.signing import signed_headers

logger = logging.getLogger(__name__)

_D = WebhookDelivery.Status
# The Standard Webhooks spec's advice: retry what may pass later, not what will not.
RETRYABLE_CODES = frozenset({408, 425, 429})
# The longest wait between attempts: a Celery countdown must stay below the broker's
# visibility timeout (or the message comes back early, a second time).
MAX_BACKOFF_S = 1800.0
# The resolver attempts use; a test swaps it to give a name an address of its choice.
resolver = system_resolver


def backoff(attempt: int) -> float:
    """Seconds before the attempt after ``attempt`` failed: base * 4^(n-1), give or take 20 %."""
    cap = min(MAX_BACKOFF_S, settings.CELERY_VISIBILITY_TIMEOUT / 2)
    delay = min(cap, settings.HARNESS_WEBHOOK_BACKOFF_S * 4 ** (attempt - 1))
    return float(delay * random.uniform(0.8, 1.2))


# -- fan-out -------------------------------------------------------------------------------------
def fan_out(announced: Sequence[Sequence[Any]]) -> list[int]:
    """Record the deliveries of announced ``[event id, [kinds]]`` pairs and send them; returns
    the ids sent."""
    subscriptions = list(WebhookSubscription.objects.filter(active=True))
    if not subscriptions:
        return []
    kinds_of = {int(event_id): list(kinds) for event_id, kinds in announced}
    events = Event.objects.filter(pk__in=kinds_of).select_related("run", "run__launched_by")
    send: list[int] = []
    with transaction.atomic():
        for kind, event, payload in _messages(list(events), kinds_of):
            for subscription in subscriptions:
                if not subscription.wants(kind):
                    continue
                delivery, created = WebhookDelivery.objects.get_or_create(
                    subscription=subscription,
                    event=event,
                    kind=kind,
                    defaults={"run": event.run, "payload": payload},
                )
                # A repeated fan-out re-sends what it recorded but never got to send.
                if created or (delivery.status == _D.PENDING and delivery.attempts == 0):
                    send.append(delivery.pk)
        for delivery_id in send:
            enqueue.after_commit(enqueue.DELIVER_WEBHOOK, delivery_id)
    return send


def _messages(
    events: list[Event], kinds_of: dict[int, list[str]]
) -> list[tuple[str, Event, dict[str, Any]]]:
    """(kind, event, message) for each announcement. The agent gates one dispatch pass opened
    (many at once when a run holds its agents) are one message with their count."""
    messages: list[tuple[str, Event, dict[str, Any]]] = []
    gates: dict[int, list[Event]] = {}
    for event in sorted(events, key=lambda e: (e.run_id, e.seq)):
        for kind in kinds_of.get(event.pk, []):
            if kind == WebhookEvent.APPROVAL_REQUESTED and event.payload.get("gate") == "task":
                gates.setdefault(event.run_id, []).append(event)
                continue
            messages.append((kind, event, message(kind, event.run, event, _details(kind, event))))
    for group in gates.values():
        first = group[0]
        details = {"approval": {**_approval(first), "count": len(group)}}
        kind = WebhookEvent.APPROVAL_REQUESTED
        messages.append((kind, first, message(kind, first.run, first, details)))
    return messages


def message(
    kind: str, run: Run | None, event: Event | None, details: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body: ``{"type", "timestamp", "data"}`` as the Standard Webhooks spec shapes it."""
    at = event.created_at if event is not None else timezone.now()
    data: dict[str, Any] = {}
    if run is not None:
        data["run"] = _run(run)
    if event is not None:
        data["event"] = {"seq": event.seq, "type": event.type}
    data.update(details)
    return {"type": kind, "timestamp": at.isoformat().replace("+00:00", "Z"), "data": data}


def _link(path: str) -> str:
    return f"{settings.HARNESS_PUBLIC_URL}{path}"


def _run(run: Run) -> dict[str, Any]:
    report = run.reports.order_by("-version").values_list("version", flat=True).first()
    return {
        "id": run.pk,
        "uid": str(run.uid),
        "title": run.title,
        "playbook": run.playbook,
        "target": run.target_label,
        "status": run.status,
        "reason": run.status_reason,
        "launched_by": run.launched_by.get_username() if run.launched_by else None,
        "agents": {
            "total": run.tasks_total,
            "succeeded": run.tasks_done,
            "failed": run.tasks_failed,
            "skipped": run.tasks_skipped,
        },
        "cost_usd": str(run.cost_usd),
        "budget_usd": None if run.budget_usd is None else str(run.budget_usd),
        "report_version": report,
        "url": _link(run.get_absolute_url()),
    }


def _details(kind: str, event: Event) -> dict[str, Any]:
    payload = event.payload
    if kind == WebhookEvent.APPROVAL_REQUESTED:
        return {"approval": {**_approval(event), "count": 1}}
    if kind == WebhookEvent.REPORT_DECIDED:
        decisions: dict[str, str] = {
            EventType.RUN_APPROVED: "approved",
            EventType.RUN_REJECTED: "rejected",
        }
        decision = decisions.get(event.type, "changes_requested")
        return {"decision": decision, "by": payload.get("by", "")}
    # A status the run moved to (it may have moved on since: data.run.status is the current).
    statuses: dict[str, str] = {
        EventType.BUDGET_EXHAUSTED: Run.Status.BUDGET_EXHAUSTED,
        EventType.REPORT_CREATED: Run.Status.BUDGET_EXHAUSTED,
    }
    status = statuses.get(event.type, event.type.removeprefix("run."))
    return {"status": status, "reason": str(payload.get("reason", ""))}


def _approval(event: Event) -> dict[str, Any]:
    return {
        "gate": event.payload.get("gate", ""),
        "version": event.payload.get("version"),
        "url": _link(reverse("runs:inbox")),
    }


# -- one attempt ---------------------------------------------------------------------------------
def attempt(delivery_id: int) -> float | None:
    """Make one attempt; returns the countdown of the next one, or None when there is none."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status__in=[_D.PENDING, _D.RETRYING]
    ).update(status=_D.SENDING, attempts=F("attempts") + 1, last_attempt_at=now)
    if not claimed:  # sent by a duplicate message, or finished meanwhile
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    answer, retryable = _send(delivery)
    ok = answer.code is not None and 200 <= answer.code < 300
    retry = not ok and retryable and delivery.attempts < settings.HARNESS_WEBHOOK_MAX_ATTEMPTS
    delay = backoff(delivery.attempts) if retry else None
    entry = {"at": now.isoformat(), "code": answer.code, "ms": answer.ms, "error": answer.error}
    finished = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery_id, status=_D.SENDING).update(
        status=_D.SUCCEEDED if ok else (_D.RETRYING if retry else _D.FAILED),
        response_code=answer.code,
        duration_ms=answer.ms,
        error=answer.error[:500],
        attempt_log=delivery.log_attempt(entry),
        delivered_at=finished if ok else None,
        next_attempt_at=finished + timedelta(seconds=delay or 0),
    )
    if not ok:
        outcome = "retrying" if retry else "failed"
        counters.add("webhook_failures", kind=delivery.kind, outcome=outcome)
        logger.info(
            "webhook delivery %s to subscription %s: %s (%s)",
            delivery.pk,
            delivery.subscription_id,
            answer.error or answer.code,
            outcome,
        )
    return delay


def _send(delivery: WebhookDelivery) -> tuple[Answer, bool]:
    """The answer of one POST, and whether a later attempt could fare better."""
    subscription = delivery.subscription
    if not subscription.active:
        return Answer(None, 0, "the subscription is disabled"), False
    allowed = parse_networks(settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS)
    try:
        target = check_url(subscription.url, allowed, resolver)
    except AddressRefused as exc:
        return Answer(None, 0, str(exc)), exc.transient
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = signed_headers(subscription.secret(), delivery.message_id, int(time.time()), body)
    timeout = settings.HARNESS_WEBHOOK_TIMEOUT_S
    answer = post(target, body, headers, connect_timeout=timeout, read_timeout=timeout)
    code = answer.code
    return answer, code is None or code >= 500 or code in RETRYABLE_CODES


# -- liveness ------------------------------------------------------------------------------------
def resend_overdue() -> int:
    """Send again the deliveries whose message was lost: due for a while and still waiting, or
    stuck sending past any timeout (their worker died). Called by the sweep."""
    now = timezone.now()
    grace = timedelta(seconds=max(60.0, settings.HARNESS_SWEEP_S * 2))
    stuck = now - timedelta(seconds=4 * settings.HARNESS_WEBHOOK_TIMEOUT_S) - grace
    WebhookDelivery.objects.filter(status=_D.SENDING, last_attempt_at__lt=stuck).update(
        status=_D.RETRYING, error="the attempt's worker stopped; sent again"
    )
    overdue = list(
        WebhookDelivery.objects.filter(
            Q(status__in=[_D.PENDING, _D.RETRYING]), next_attempt_at__lt=now - grace
        ).values_list("pk", flat=True)[:500]
    )
    for delivery_id in overdue:
        enqueue.send(enqueue.DELIVER_WEBHOOK, delivery_id)
    return len(overdue)


def prune_finished(limit: int = 1000) -> int:
    """Delete up to ``limit`` succeeded or failed deliveries older than
    ``HARNESS_WEBHOOK_KEEP_DAYS`` (0: keep them all); returns how many. Called by the sweep: each
    event of each run leaves one row per subscription, and without this the table only grows.
    Pending and retrying ones stay whatever their age: deleting them would lose a message."""
    days = settings.HARNESS_WEBHOOK_KEEP_DAYS
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    # Bounded, so a first sweep over a years-old table is many short deletes, not one long one.
    ids = list(
        WebhookDelivery.objects.filter(
            status__in=[_D.SUCCEEDED, _D.FAILED], created_at__lt=cutoff
        ).values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return 0
    deleted, _ = WebhookDelivery.objects.filter(pk__in=ids).delete()
    return int(deleted)
