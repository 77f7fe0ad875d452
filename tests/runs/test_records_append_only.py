"""The audit trail cannot be rewritten: not through the admin (no add, change or delete of any
record; a run's status, cost and counters included), and not through the model layer (a save of
an existing event, step, span or decided approval raises, and so does a bulk update or delete)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from runs.models import Approval, Event, Finding, Report, Run, Span, Step, Task
from runs.models.append_only import RecordIsAppendOnly
from tests.runs.factories import emit, make_finding, make_report, make_run, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    user = User.objects.create_superuser("root-admin", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def records() -> dict[type, object]:
    run = make_run()
    task = make_task(run)
    now = timezone.now()
    with transaction.atomic():
        event = emit(run, "task.started", task)
    return {
        Run: run,
        Task: task,
        Event: event,
        Step: Step.objects.create(task=task, index=0, kind="chat", name="chat gpt"),
        Span: Span.objects.create(
            trace_id="a" * 32,
            span_id="b" * 16,
            run=run,
            name="invoke_agent auditor",
            kind="INTERNAL",
            start=now - timedelta(seconds=1),
            end=now,
        ),
        Finding: make_finding(run, task),
        Report: make_report(run),
        Approval: Approval.objects.create(
            run=run, gate="task", target_id=task.pk, decision="approved", decided_at=now
        ),
    }


def _admin_url(model: type, action: str, *args: object) -> str:
    meta = model._meta  # type: ignore[attr-defined]
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{action}", args=args)


@pytest.mark.parametrize("model", [Run, Task, Event, Step, Span, Finding, Report, Approval])
def test_the_admin_offers_no_add_change_or_delete_for_any_record(
    admin_client: Client, records: dict[type, object], model: type
) -> None:
    obj = records[model]
    pk = obj.pk  # type: ignore[attr-defined]
    assert admin_client.get(_admin_url(model, "add")).status_code == 403
    assert admin_client.post(_admin_url(model, "add"), {}).status_code == 403
    page = admin_client.get(_admin_url(model, "change", pk))
    assert page.status_code == 200  # shown, read-only
    assert b'name="_save"' not in page.content
    assert admin_client.post(_admin_url(model, "delete", pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=pk).exists()  # type: ignore[attr-defined]
    changelist = admin_client.get(_admin_url(model, "changelist"))
    assert changelist.status_code == 200
    assert b"delete_selected" not in changelist.content


def test_an_admin_cannot_edit_a_runs_status_or_cost(
    admin_client: Client, records: dict[type, object]
) -> None:
    run = records[Run]
    assert isinstance(run, Run)
    response = admin_client.post(
        _admin_url(Run, "change", run.pk),
        {"status": "approved", "cost_usd": "0", "tasks_done": "999", "_save": "Save"},
    )
    assert response.status_code == 403
    fresh = Run.objects.get(pk=run.pk)
    assert (fresh.status, fresh.cost_usd, fresh.tasks_done) == (
        run.status,
        run.cost_usd,
        run.tasks_done,
    )


def test_an_existing_event_cannot_be_saved_updated_or_deleted(
    records: dict[type, object],
) -> None:
    event = records[Event]
    assert isinstance(event, Event)
    event.type = "run.approved"
    with pytest.raises(RecordIsAppendOnly):
        event.save()
    with pytest.raises(RecordIsAppendOnly):
        Event.objects.filter(pk=event.pk).update(type="run.approved")
    with pytest.raises(RecordIsAppendOnly):
        event.delete()
    with pytest.raises(RecordIsAppendOnly):
        Event.objects.filter(pk=event.pk).delete()
    assert Event.objects.get(pk=event.pk).type == "task.started"


def test_a_stored_span_cannot_be_changed(records: dict[type, object]) -> None:
    span = records[Span]
    assert isinstance(span, Span)
    span.status = "OK"
    with pytest.raises(RecordIsAppendOnly):
        span.save()
    with pytest.raises(RecordIsAppendOnly):
        Span.objects.filter(pk=span.pk).update(status="OK")
    with pytest.raises(RecordIsAppendOnly):
        Span.objects.all().delete()


def test_a_stored_call_keeps_its_cost_and_only_moves_out_of_a_new_trys_way(
    records: dict[type, object],
) -> None:
    step = records[Step]
    assert isinstance(step, Step)
    step.cost_usd = Decimal("9")
    with pytest.raises(RecordIsAppendOnly):
        step.save()
    with pytest.raises(RecordIsAppendOnly):
        Step.objects.filter(pk=step.pk).update(cost_usd=Decimal("0"))
    with pytest.raises(RecordIsAppendOnly):
        step.delete()
    # The one documented move (runs/actions/tries.py): a new try shifts the index.
    assert Step.objects.filter(pk=step.pk).update(index=1_000_000) == 1


def test_a_decision_stands_but_a_pending_gate_can_be_decided_once(
    records: dict[type, object],
) -> None:
    decided = records[Approval]
    assert isinstance(decided, Approval)
    decided.decision = "rejected"
    with pytest.raises(RecordIsAppendOnly):
        decided.save()
    with pytest.raises(RecordIsAppendOnly):
        Approval.objects.filter(pk=decided.pk).update(decision="rejected")
    with pytest.raises(RecordIsAppendOnly):
        Approval.objects.filter(pk=decided.pk).delete()
    assert Approval.objects.get(pk=decided.pk).decision == "approved"

    pending = Approval.objects.create(run=decided.run, gate="report", target_id=1)
    assert Approval.objects.filter(pk=pending.pk).update(decision="approved") == 1
    with pytest.raises(RecordIsAppendOnly):
        Approval.objects.filter(pk=pending.pk).update(comment="changed my mind")
    withdrawn = Approval.objects.create(run=decided.run, gate="report", target_id=2)
    Approval.objects.filter(pk=withdrawn.pk).delete()  # a superseded, undecided gate
    assert not Approval.objects.filter(pk=withdrawn.pk).exists()


def test_deleting_a_run_still_removes_everything_it_recorded(
    records: dict[type, object],
) -> None:
    run = records[Run]
    assert isinstance(run, Run)
    run.delete()
    assert not Event.objects.filter(run_id=run.pk).exists()
    assert not Approval.objects.filter(run_id=run.pk).exists()
