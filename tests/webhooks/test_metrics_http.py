"""/metrics over real HTTP: who may read it, and Prometheus text that prometheus-client's own
parser reads, with every harness_ metric and the values the database and Redis hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from harness_site.redis_client import get_redis
from runs.actions.tokens import create_token, revoke_token
from runs.models import Run, Task
from runs.observability.counters import counters
from runs.views import metrics as metrics_view
from tests.runs.factories import make_run, make_task
from tests.webhooks.http_client import Browser

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED = {
    "harness_runs",
    "harness_run_agents_in_flight",
    "harness_run_agents_queued",
    "harness_agents_in_flight",
    "harness_agents_queued",
    "harness_queue_depth",
    "harness_webhook_deliveries",
    "harness_agent_completions",
    "harness_model_calls",
    "harness_model_tokens",
    "harness_model_cost_usd",
    "harness_budget_reservations_refused",
    "harness_webhook_failures",
    "harness_event_broadcast_lag_seconds",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_are_for_staff_only(live_server, make_user) -> None:
    anonymous = Browser(live_server.url, None).get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "harness_" not in anonymous.text
    for role in ("viewer", "operator", "reviewer"):
        response = Browser(live_server.url, make_user(role)).get("/metrics")
        assert response.status_code == 403, role
        assert "harness_" not in response.text
    staff = Browser(live_server.url, make_user(None, is_staff=True)).get("/metrics")
    assert staff.status_code == 200
    assert staff.headers["Content-Type"].startswith("text/plain; version=")
    assert (
        "no-cache" in staff.headers["Cache-Control"]
        or "max-age=0" in staff.headers["Cache-Control"]
    )


def test_a_token_reads_metrics_only_with_the_metrics_scope(live_server, make_user) -> None:
    user = make_user("viewer")
    soon = timezone.now() + timedelta(days=1)
    _, with_scope = create_token(user, "scraper", ["metrics"], expires_at=soon)
    _, without = create_token(user, "reader", ["read"], expires_at=soon)
    revoked, revoked_secret = create_token(user, "old", ["metrics"], expires_at=soon)
    revoke_token(revoked)

    def get(secret: str) -> Any:
        return Browser(live_server.url, None).get(
            "/metrics", headers={"Authorization": f"Bearer {secret}"}
        )

    allowed = get(with_scope)
    assert allowed.status_code == 200
    assert "harness_runs" in allowed.text
    for secret in (without, revoked_secret, "hsk_not-a-token"):
        response = get(secret)
        assert response.status_code == 401, secret[:8]
        assert "harness_" not in response.text
    assert metrics_view.token_may_read_metrics.__name__ == "token_may_read_metrics"


def test_metrics_parse_with_every_name_and_the_values_held(
    live_server, make_user, settings: Any
) -> None:
    busy = make_run(status=Run.Status.RUNNING, finished_at=None)
    for status in ("queued", "queued", "running", "retrying", "pending", "succeeded"):
        make_task(busy, status=status)
    make_run(status=Run.Status.AWAITING_REVIEW)
    make_run(status=Run.Status.FAILED)
    done = make_run(status=Run.Status.CANCELLED)
    make_task(done, status=Task.Status.QUEUED)  # a finished run's leftovers are not in flight
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-metrics-test"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    get_redis().rpush(queue, "m1", "m2", "m3")
    counters.flush()
    before = samples(Browser(live_server.url, make_user(None, is_staff=True)).get("/metrics").text)
    counters.add("model_calls", 2, provider="openai", model="gpt-4o-mini")
    counters.add("model_cost_usd", 0.25, provider="openai", model="gpt-4o-mini")
    counters.add("agent_completions", 3, status="succeeded")
    counters.observe("event_broadcast_lag_seconds", 0.07)
    counters.flush()
    try:
        text = Browser(live_server.url, make_user(None, is_staff=True)).get("/metrics").text
    finally:
        get_redis().delete(queue)

    names = {family.name for family in text_string_to_metric_families(text)}
    assert names >= EXPECTED, EXPECTED - names
    assert all(name.startswith("harness_") for name in names)
    got = samples(text)
    assert got[("harness_runs", (("status", "running"),))] == 1
    assert got[("harness_runs", (("status", "awaiting_review"),))] == 1
    assert got[("harness_runs", (("status", "approved"),))] == 0
    assert got[("harness_run_agents_in_flight", (("run", str(busy.pk)),))] == 4
    assert got[("harness_run_agents_queued", (("run", str(busy.pk)),))] == 2
    assert got[("harness_agents_in_flight", ())] == 4
    assert got[("harness_agents_queued", ())] == 2
    assert got[("harness_queue_depth", (("queue", queue),))] == 3

    def grew(name: str, labels: tuple[tuple[str, str], ...], by: float) -> bool:
        return got[(name, labels)] == pytest.approx(before.get((name, labels), 0) + by)

    openai = (("model", "gpt-4o-mini"), ("provider", "openai"))
    assert grew("harness_model_calls_total", openai, 2)
    assert grew("harness_model_cost_usd_total", openai, 0.25)
    assert grew("harness_agent_completions_total", (("status", "succeeded"),), 3)
    assert grew("harness_event_broadcast_lag_seconds_bucket", (("le", "0.1"),), 1)
    assert grew("harness_event_broadcast_lag_seconds_bucket", (("le", "0.05"),), 0)
    assert grew("harness_event_broadcast_lag_seconds_count", (), 1)
