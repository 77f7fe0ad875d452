"""Which run events become webhooks, handed on after commit and never inside the run's
transaction, and how the fan-out records one delivery per subscription that wants it."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from harness_site.celery import app as celery_app
from runs.actions import cancel_run
from runs.actions.webhook_delivery import fan_out
from runs.eventlog import hooks
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event, record_events
from runs.models import Run, WebhookDelivery
from tests.runs.factories import emit, make_run, make_task
from tests.webhooks.helpers import subscribe

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("type", "payload", "kinds"),
    [
        ("run.failed", {"reason": "x"}, ["run.failed", "run.finished"]),
        ("run.cancelled", {"by": "op"}, ["run.finished"]),
        ("run.awaiting_review", {}, ["run.awaiting_review", "run.finished"]),
        ("budget.exhausted", {"reason": "x"}, ["run.budget_exhausted"]),
        ("approval.requested", {"gate": "report", "version": 1}, ["approval.requested"]),
        ("approval.requested", {"gate": "task"}, ["approval.requested"]),
        ("run.approved", {"by": "rev"}, ["report.decided"]),
        ("run.rejected", {"by": "rev"}, ["report.decided"]),
        (
            "approval.changes_requested",
            {"gate": "report", "by": "r", "target": "", "comment": ""},
            ["report.decided"],
        ),
        (
            "approval.changes_requested",
            {"gate": "finding", "by": "r", "target": "", "comment": ""},
            [],
        ),
        ("task.succeeded", {}, []),
        ("finding.added", {}, []),
        ("report.created", {"version": 1}, []),
    ],
)
def test_which_events_are_announced(type: str, payload: dict, kinds: list[str]) -> None:
    run = make_run(status=Run.Status.RUNNING)
    assert list(hooks.webhook_kinds(run, type, payload)) == kinds


def test_the_report_of_a_run_out_of_budget_finishes_it_once() -> None:
    run = make_run(status=Run.Status.BUDGET_EXHAUSTED, finished_at=None)
    assert hooks.webhook_kinds(run, "report.created", {"version": 1}) == ("run.finished",)
    run.finished_at = run.started_at  # a later re-aggregation of the same run
    assert hooks.webhook_kinds(run, "report.created", {"version": 2}) == ()


def test_announced_after_commit_with_no_webhook_work_in_the_transaction(
    django_capture_on_commit_callbacks, operator
) -> None:
    subscribe("https://hooks.example.com/x")
    run = make_run(status=Run.Status.RUNNING)
    with mock.patch.object(celery_app, "send_task") as send_task:
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=False) as callbacks,
        ):
            assert cancel_run(run, operator)
        assert not send_task.called  # nothing leaves before the commit
        for callback in callbacks:
            callback()
    assert not [q for q in queries if "webhook" in q["sql"].lower()]
    event = run.events.get(type="run.cancelled")
    announced = [c for c in send_task.call_args_list if c.args[0] == hooks.WEBHOOK_EVENTS]
    assert announced == [mock.call(hooks.WEBHOOK_EVENTS, args=[[(event.pk, ["run.finished"])]])]


def test_agent_events_announce_nothing(django_capture_on_commit_callbacks) -> None:
    run = make_run(status=Run.Status.RUNNING)
    task = make_task(run)
    with (
        mock.patch.object(celery_app, "send_task") as send_task,
        django_capture_on_commit_callbacks(execute=True),
    ):
        emit(run, "task.succeeded", task=task)
        emit(run, "finding.added", task=task, severity="high", title="t", location="a.py:1")
    assert not send_task.called


def test_a_failed_publish_never_breaks_the_commit(django_capture_on_commit_callbacks, operator):
    run = make_run(status=Run.Status.RUNNING)
    with (
        mock.patch.object(celery_app, "send_task", side_effect=ConnectionError("redis away")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert cancel_run(run, operator)
    assert Run.objects.get(pk=run.pk).status == Run.Status.CANCELLED


def test_fan_out_records_one_delivery_per_subscription_that_wants_it_once() -> None:
    finished = subscribe("https://a.example.com/x", ["run.finished"])
    failed = subscribe("https://b.example.com/x", ["run.failed"])
    gates = subscribe("https://c.example.com/x", ["approval.requested"])
    subscribe("https://d.example.com/x", ["run.finished"], active=False)
    run = make_run(status=Run.Status.RUNNING)
    with transaction.atomic():
        event = record_event(run, EventType.RUN_FAILED, {"reason": "boom"})
    announced = [[event.pk, ["run.failed", "run.finished"]]]

    with mock.patch("runs.actions.enqueue.send"):
        first = fan_out(announced)
        again = fan_out(announced)  # Celery delivered the message twice

    deliveries = WebhookDelivery.objects.order_by("subscription_id")
    assert [(d.subscription_id, d.kind) for d in deliveries] == [
        (finished.pk, "run.finished"),
        (failed.pk, "run.failed"),
    ]
    assert sorted(first) == sorted(d.pk for d in deliveries)
    assert sorted(again) == sorted(first)  # re-sent (never attempted), not recorded twice
    assert not gates.deliveries.exists()
    message = deliveries[0].payload
    assert message["type"] == "run.finished"
    assert message["data"]["status"] == "failed" and message["data"]["reason"] == "boom"
    assert message["data"]["event"] == {"seq": event.seq, "type": "run.failed"}


def test_the_agent_gates_of_one_pass_are_one_message() -> None:
    gates = subscribe("https://c.example.com/x", ["approval.requested"])
    run = make_run(status=Run.Status.RUNNING)
    tasks = [make_task(run) for _ in range(5)]
    with transaction.atomic():
        events = record_events(
            run, [(EventType.APPROVAL_REQUESTED, {"gate": "task"}, task) for task in tasks]
        )
    with mock.patch("runs.actions.enqueue.send"):
        fan_out([[e.pk, ["approval.requested"]] for e in events])
    [delivery] = gates.deliveries.all()
    assert delivery.payload["data"]["approval"]["count"] == 5
    assert delivery.payload["data"]["approval"]["gate"] == "task"
    assert delivery.payload["data"]["approval"]["url"].endswith("/approvals/")
