"""One delivery attempt over real HTTP to a local receiver: signed (verified with the Standard
Webhooks library), recorded, retried only when a retry can help, never redirected, and never
sent to an address the SSRF check refuses."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from runs.actions.webhook_delivery import attempt
from runs.models import WebhookDelivery
from runs.observability.counters import counters, read_counters
from tests.webhooks.helpers import failed_run_delivery, subscribe

pytestmark = pytest.mark.django_db

_D = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any) -> None:
    settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.HARNESS_WEBHOOK_TIMEOUT_S = 1.0


def test_a_delivery_is_signed_and_the_receiver_verifies_it(receiver) -> None:
    server = receiver([200])
    subscription = subscribe(server.url)
    delivery = failed_run_delivery(subscription)

    assert attempt(delivery.pk) is None

    [request] = server.requests
    payload = Webhook(subscription.secret()).verify(request.body, request.headers)
    assert payload["type"] == "run.failed"
    assert payload["data"]["run"]["id"] == delivery.run_id
    assert payload["data"]["status"] == "failed"
    assert payload["data"]["reason"] == "a critical agent failed"
    assert payload["data"]["run"]["url"].endswith(f"/runs/{delivery.run_id}/")
    assert request.headers["webhook-id"] == f"msg_{delivery.uid.hex}"
    assert request.headers["content-type"] == "application/json"
    assert subscription.secret().startswith("whsec_")
    assert subscription.secret() not in json.dumps(payload)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (_D.SUCCEEDED, 1, 200)
    assert delivery.duration_ms is not None and delivery.delivered_at is not None
    assert [entry["code"] for entry in delivery.attempt_log] == [200]


def test_a_500_is_retried_later_with_the_same_message_id(receiver, settings) -> None:
    settings.HARNESS_WEBHOOK_BACKOFF_S = 10.0
    server = receiver([500, 503, 200])
    delivery = failed_run_delivery(subscribe(server.url))

    first = attempt(delivery.pk)
    delivery.refresh_from_db()
    assert first is not None and 8 <= first <= 12  # the base delay, give or take 20 %
    assert (delivery.status, delivery.response_code) == (_D.RETRYING, 500)
    assert "receiver says no" in delivery.error
    second = attempt(delivery.pk)
    assert second is not None and 32 <= second <= 48  # four times longer
    assert attempt(delivery.pk) is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (_D.SUCCEEDED, 3)
    assert [entry["code"] for entry in delivery.attempt_log] == [500, 503, 200]
    assert len({r.headers["webhook-id"] for r in server.requests}) == 1


def test_a_delivery_gives_up_after_the_last_attempt(receiver, settings) -> None:
    settings.HARNESS_WEBHOOK_MAX_ATTEMPTS = 2
    server = receiver([502])
    delivery = failed_run_delivery(subscribe(server.url))
    counters.flush()
    before = read_counters().get(
        ("webhook_failures", (("kind", "run.failed"), ("outcome", "failed"))), 0
    )

    assert attempt(delivery.pk) is not None
    assert attempt(delivery.pk) is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (_D.FAILED, 2, 502)
    assert attempt(delivery.pk) is None  # a finished delivery is never claimed again
    assert len(server.requests) == 2
    counters.flush()
    after = read_counters()[("webhook_failures", (("kind", "run.failed"), ("outcome", "failed")))]
    assert after == before + 1


def test_a_client_error_fails_at_once(receiver) -> None:
    server = receiver([400])
    delivery = failed_run_delivery(subscribe(server.url))
    assert attempt(delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (_D.FAILED, 1, 400)


def test_a_redirect_is_not_followed(receiver) -> None:
    elsewhere = receiver([200])
    server = receiver([302], location=elsewhere.url)
    delivery = failed_run_delivery(subscribe(server.url))

    attempt(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.response_code == 302 and delivery.status == _D.FAILED
    assert "redirects are not followed" in delivery.error
    assert elsewhere.requests == []


def test_an_address_refused_at_send_time_is_never_contacted(receiver, settings) -> None:
    server = receiver([200])
    delivery = failed_run_delivery(subscribe(server.url))
    settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS = []  # the deployment no longer allows loopback

    assert attempt(delivery.pk) is None

    delivery.refresh_from_db()
    assert delivery.status == _D.FAILED and delivery.response_code is None
    assert "127.0.0.1 is a loopback address" in delivery.error
    assert server.requests == []


def test_a_name_resolving_to_loopback_is_refused_at_send_time(receiver, settings) -> None:
    server = receiver([200])
    settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS = []
    delivery = failed_run_delivery(subscribe(server.url.replace("127.0.0.1", "localhost")))

    attempt(delivery.pk)

    delivery.refresh_from_db()
    assert "localhost resolves to 127.0.0.1, which is a loopback address" in delivery.error
    assert server.requests == []


def test_a_receiver_that_is_down_costs_at_most_the_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = failed_run_delivery(subscribe(f"http://127.0.0.1:{port}/hook"))

    assert attempt(delivery.pk) is not None

    delivery.refresh_from_db()
    assert delivery.status == _D.RETRYING and delivery.response_code is None
    assert delivery.error == "connection refused or unreachable"


def test_a_receiver_that_never_answers_is_cut_at_the_timeout(settings) -> None:
    settings.HARNESS_WEBHOOK_TIMEOUT_S = 0.5
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the connection, never answers
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    try:
        delivery = failed_run_delivery(
            subscribe(f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
        )
        started = time.monotonic()
        assert attempt(delivery.pk) is not None
        assert time.monotonic() - started < 2
    finally:
        for conn in held:
            conn.close()
        listener.close()
    delivery.refresh_from_db()
    assert delivery.error == "no answer in time" and delivery.status == _D.RETRYING


def test_a_disabled_subscription_sends_nothing(receiver) -> None:
    server = receiver([200])
    subscription = subscribe(server.url)
    delivery = failed_run_delivery(subscription)
    subscription.active = False
    subscription.save()

    attempt(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == _D.FAILED and delivery.error == "the subscription is disabled"
    assert server.requests == []
