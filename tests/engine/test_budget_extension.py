"""The budget gate: a run whose budget ran out continues from where it stopped once a reviewer
approves an extension; refused requests change nothing. And the other end of a run: an
aggregation that cannot succeed fails the run instead of leaving it aggregating forever."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.actions import enqueue, launch_run
from runs.actions.dispatch import dispatch
from runs.actions.planning import plan_run
from runs.engine import worker
from runs.models import Approval, Event, Run, Task
from runs.run_budget import budget_for
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db(transaction=True)


def _now(monkeypatch: Any) -> None:
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn()
    )


def _drain(run: Run) -> None:
    """Dispatch and run every ready agent in this process, as workers would."""
    for _ in range(50):
        queued = list(Task.objects.filter(run=run, status__in=["queued", "retrying"]))
        if not queued:
            dispatch(run.pk)
            queued = list(Task.objects.filter(run=run, status="queued"))
            if not queued:
                return
        for task in queued:
            worker.execute(task.pk)


@pytest.fixture
def exhausted(tmp_path: Path, settings: Any, monkeypatch: Any, operator: User) -> Run:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    _now(monkeypatch)
    run = launch_run(
        user=operator,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 4)),
        max_concurrency=2,
        budget_usd="0.000001",
        aggregation=["dedup"],
        options={"chunk_files": 1},
    )
    plan_run(run.pk)
    _drain(run)
    run.refresh_from_db()
    assert run.status == Run.Status.BUDGET_EXHAUSTED
    assert Task.objects.filter(run=run, status="skipped").count() == run.tasks_total
    return run


def test_an_approved_extension_continues_the_run_to_a_new_report(
    exhausted: Run, operator_client: Client, reviewer_client: Client, monkeypatch: Any
) -> None:
    run = exhausted
    url = reverse("runs:extend", args=[run.pk])
    page = operator_client.post(url, {"budget_usd": "0.0000005"}, follow=True).content.decode()
    assert "must be more than the current" in page
    assert not Approval.objects.filter(run=run, gate="budget").exists()
    assert reviewer_client.post(url, {"budget_usd": "5"}).status_code == 403  # operators ask

    operator_client.post(url, {"budget_usd": "5", "comment": "worth finishing"})
    gate = Approval.objects.get(run=run, gate="budget", decision="pending")
    html = reviewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "raise the budget from $0.0000 to $5.0000" in html and "Approve extension" in html

    reviewer_client.post(
        reverse("runs:decide", args=[run.pk]), {"approval": gate.pk, "decision": "approved"}
    )
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.budget_usd == Decimal("5")
    assert run.finished_at is None
    assert set(Task.objects.filter(run=run).values_list("status", flat=True)) == {"pending"}
    state = budget_for(run).state()
    assert state.limit_usd == 5.0 and not state.exhausted
    assert Event.objects.filter(run=run, type="run.resumed").exists()

    _now(monkeypatch)
    _drain(run)
    run.refresh_from_db()
    assert run.tasks_done == run.tasks_total
    assert run.status in (Run.Status.AGGREGATING, Run.Status.AWAITING_REVIEW)


def test_a_rejected_extension_leaves_the_run_finalised(
    exhausted: Run, operator_client: Client, reviewer_client: Client
) -> None:
    run = exhausted
    operator_client.post(reverse("runs:extend", args=[run.pk]), {"budget_usd": "5"})
    again = operator_client.post(
        reverse("runs:extend", args=[run.pk]), {"budget_usd": "6"}, follow=True
    )
    assert "already waiting for a decision" in again.content.decode()
    gate = Approval.objects.get(run=run, gate="budget")
    reviewer_client.post(
        reverse("runs:decide", args=[run.pk]),
        {"approval": gate.pk, "decision": "rejected", "comment": "not worth it"},
    )
    run.refresh_from_db()
    assert run.status == Run.Status.BUDGET_EXHAUSTED and run.budget_usd == Decimal("0.000001")
    assert set(Task.objects.filter(run=run).values_list("status", flat=True)) == {"skipped"}


def test_an_aggregation_that_cannot_succeed_fails_the_run_saying_why(
    tmp_path: Path, settings: Any, monkeypatch: Any
) -> None:
    from runs.actions import report

    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    _now(monkeypatch)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 2)),
        options={"chunk_files": 1},
    )
    plan_run(run.pk)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a payload key nobody declared")

    monkeypatch.setattr(report, "run_chain", broken)
    _drain(run)  # the last agent's dispatch starts the aggregation, which fails
    report.aggregate(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.status_reason == "aggregation failed: ValueError: a payload key nobody declared"
    assert Event.objects.filter(run=run, type="run.failed").count() == 1
    assert run.tasks_done == run.tasks_total  # the agents' work is kept
