"""Webhooks end to end: a real run on a real Celery worker announces its end, the worker signs
and POSTs it to local receivers (real HTTP servers), retrying after 500s with backoff."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from runs.actions import launch_run
from runs.models import Run, Step, WebhookDelivery
from runs.observability.counters import counters, read_counters
from tests.engine.helpers import make_target, wait_for_run
from tests.webhooks.helpers import subscribe

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "HARNESS_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "HARNESS_WEBHOOK_BACKOFF_S": "0.3",
    "HARNESS_WEBHOOK_TIMEOUT_S": "2",
}


def wait_for_deliveries(count: int, timeout: float = 30) -> list[WebhookDelivery]:
    deadline = time.monotonic() + timeout
    done = (WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED)
    while time.monotonic() < deadline:
        deliveries = list(WebhookDelivery.objects.order_by("id"))
        if len(deliveries) >= count and all(d.status in done for d in deliveries):
            return deliveries
        time.sleep(0.2)
    states = list(WebhookDelivery.objects.values_list("kind", "status", "attempts", "error"))
    raise AssertionError(f"deliveries not finished in {timeout}s: {states}")


def test_a_real_run_is_announced_signed_retried_after_500s_and_counted(
    celery_worker, receiver, tmp_path: Path, settings: Any
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    counters.flush()
    before = read_counters()
    celery_worker(concurrency=4, name="hooks", pool="threads", env=WORKER_ENV)
    flaky = receiver([500, 500, 200])
    steady = receiver([200])
    finished = subscribe(flaky.url, ["run.finished"])
    review = subscribe(steady.url, ["run.awaiting_review", "approval.requested"])

    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 2)),
        options={"chunk_files": 1},
        budget_usd="10",
    )
    run = wait_for_run(run.pk, timeout=120)
    assert run.status == Run.Status.AWAITING_REVIEW
    deliveries = wait_for_deliveries(3)

    by_kind = {d.kind: d for d in deliveries}
    assert set(by_kind) == {"run.finished", "run.awaiting_review", "approval.requested"}
    assert all(d.status == WebhookDelivery.Status.SUCCEEDED for d in deliveries)
    retried = by_kind["run.finished"]
    assert retried.attempts == 3
    assert [entry["code"] for entry in retried.attempt_log] == [500, 500, 200]

    # Every request, the failed ones included, is signed: the spec's verifier accepts each.
    assert len(flaky.requests) == 3
    bodies = [Webhook(finished.secret()).verify(r.body, r.headers) for r in flaky.requests]
    assert {b["type"] for b in bodies} == {"run.finished"}
    assert bodies[0]["data"]["run"]["id"] == run.pk
    assert bodies[0]["data"]["status"] == "awaiting_review"
    assert len({r.headers["webhook-id"] for r in flaky.requests}) == 1
    # Backoff: the second retry waited longer than the first (0.3 s, then 1.2 s, +-20 %).
    at = [datetime.fromisoformat(entry["at"]) for entry in retried.attempt_log]
    first_wait, second_wait = ((at[i + 1] - at[i]).total_seconds() for i in (0, 1))
    assert 0.24 <= first_wait < second_wait and second_wait >= 0.96

    kinds = sorted(
        Webhook(review.secret()).verify(r.body, r.headers)["type"] for r in steady.requests
    )
    assert kinds == ["approval.requested", "run.awaiting_review"]

    # What the worker counted reached Redis, where /metrics reads it (sent once a second).
    calls = Step.objects.filter(task__run=run, kind="chat").count()
    assert calls >= 1

    def total(counters_now: dict, name: str, **labels: str) -> float:
        return sum(
            value
            for (counted, pairs), value in counters_now.items()
            if counted == name and labels.items() <= dict(pairs).items()
        )

    def counted() -> bool:
        now = read_counters()
        return all(
            total(now, name, **labels) >= total(before, name, **labels) + by
            for name, labels, by in [
                ("agent_completions", {"status": "succeeded"}, run.tasks_done),
                ("model_calls", {"provider": "heuristic"}, calls),
                ("event_broadcast_lag_seconds_count", {}, 1),
            ]
        )

    deadline = time.monotonic() + 10
    while not counted() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted(), read_counters()
