"""Bulk decisions in the approvals inbox: every agent of a run waiting at its gate, or those of
one of its tree groups, approved or rejected at once under the rules of a single decision (a
reviewer's permission, a comment to reject, ``check_decision`` on each gate). Gates decided by
someone else meanwhile are skipped and counted; the run is dispatched once. Without JavaScript a
POST and a redirect; with htmx the result and the inbox's changes in one answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.actions import enqueue, review
from runs.actions.refusals import DecisionRefused
from runs.actions.review import decide_approval, decide_task_gates
from runs.models import Approval, Event, Run, Task
from tests.runs.factories import make_report, make_run, make_task

pytestmark = pytest.mark.django_db

INBOX = reverse("runs:inbox")


def _held(run: Run, group: str, count: int) -> list[Approval]:
    gates = []
    for _ in range(count):
        task = make_task(
            run,
            group=group,
            status=Task.Status.AWAITING_APPROVAL,
            needs_approval=True,
            started_at=None,
            finished_at=None,
        )
        gates.append(
            Approval.objects.create(
                run=run, gate=Approval.Gate.TASK, target_id=task.pk, target_label=task.scope_label
            )
        )
    return gates


def _task(gate: Approval) -> Task:
    return Task.objects.get(pk=gate.target_id)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """What would be published to the workers (after commit)."""
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        enqueue, "send", lambda name, object_id, countdown=None: calls.append((name, object_id))
    )
    return calls


@pytest.fixture
def held(operator: User) -> dict[str, Any]:
    """Run A: three agents of app/ and two of lib/ at their gates, and its report gate; run B:
    one agent at its gate."""
    run = make_run(operator)
    other = make_run(operator)
    make_report(run)
    return {
        "run": run,
        "app": _held(run, "app", 3),
        "lib": _held(run, "lib", 2),
        "report": Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=1),
        "other": _held(other, "app", 1),
    }


def _bulk(client: Client, run: Run, decision: str, **data: str) -> Any:
    return client.post(
        reverse("runs:decide_agents", args=[run.pk]),
        {"decision": decision, "next": INBOX, **data},
    )


def _decisions(run: Run) -> list[dict[str, Any]]:
    return [
        e.payload for e in Event.objects.filter(run=run, type="approval.decided").order_by("seq")
    ]


def test_approving_every_waiting_agent_of_a_run_at_once_without_javascript(
    reviewer_client: Client,
    held: dict[str, Any],
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    run = held["run"]
    with django_capture_on_commit_callbacks(execute=True):
        response = _bulk(reviewer_client, run, "approved", scope="*")
    assert response.status_code == 302 and response["Location"] == INBOX
    page = reviewer_client.get(INBOX).content.decode()
    assert "Approved 5 waiting agents of run #" in page and "skipped:" not in page
    for gate in held["app"] + held["lib"]:
        gate.refresh_from_db()
        assert gate.decision == "approved" and _task(gate).status == Task.Status.PENDING
    # Only the run's agents: its report gate and the other run's agent still wait.
    held["report"].refresh_from_db()
    assert held["report"].decision == "pending"
    assert _task(held["other"][0]).status == Task.Status.AWAITING_APPROVAL
    # One event per gate, as a single decision writes it; one dispatch for the run.
    assert [e["decision"] for e in _decisions(run)] == ["approved"] * 5
    assert {e["gate"] for e in _decisions(run)} == {"task"}
    assert sent == [(enqueue.DISPATCH_RUN, run.pk)]


def test_rejecting_one_group_needs_a_comment_and_leaves_the_other_groups_waiting(
    reviewer_client: Client, held: dict[str, Any], sent: list[tuple[str, int]]
) -> None:
    run = held["run"]
    _bulk(reviewer_client, run, "rejected", scope="g:lib")
    page = reviewer_client.get(INBOX).content.decode()
    assert "A rejection needs a comment saying why." in page
    assert Approval.objects.filter(run=run, decision="pending").count() == 6

    _bulk(reviewer_client, run, "rejected", scope="g:lib", comment="lib/ is vendored code")
    page = reviewer_client.get(INBOX).content.decode()
    assert "Rejected 2 waiting agents of run #" in page and "(group lib)" in page
    for gate in held["lib"]:
        gate.refresh_from_db()
        task = _task(gate)
        assert gate.decision == "rejected" and gate.comment == "lib/ is vendored code"
        assert task.status == Task.Status.SKIPPED and "rejected" in task.error
    assert {_task(g).status for g in held["app"]} == {Task.Status.AWAITING_APPROVAL}
    run.refresh_from_db()
    assert run.tasks_skipped == 2


def test_gates_decided_by_someone_else_meanwhile_are_skipped_and_counted(
    reviewer: User,
    make_user: Callable[..., User],
    held: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    run = held["run"]
    gates = held["app"] + held["lib"]
    # The bulk action has read the five gates as pending; then another reviewer decides two.
    read = list(Approval.objects.filter(pk__in=[g.pk for g in gates]).select_related("run"))
    monkeypatch.setattr(review, "_waiting_task_gates", lambda run, group: read)
    other = make_user("reviewer", username="quick-reviewer")
    with django_capture_on_commit_callbacks(execute=True):
        decide_approval(gates[0], other, "approved")
        decide_approval(gates[1], other, "rejected", "not this one")
        result = decide_task_gates(run, reviewer, "approved")
    assert result.decided == 3
    assert result.skipped == {"already decided by quick-reviewer": 2}
    assert result.skipped_count == 2
    assert "Approved 3 waiting agents" in result.summary()
    assert "2 skipped: already decided by quick-reviewer (2)" in result.summary()
    gates[1].refresh_from_db()
    assert gates[1].decision == "rejected"  # the other reviewer's decision stands
    assert _task(gates[1]).status == Task.Status.SKIPPED
    assert [e["by"] for e in _decisions(run)] == ["quick-reviewer"] * 2 + [reviewer.username] * 3
    assert sent.count((enqueue.DISPATCH_RUN, run.pk)) == 3  # two single decisions, one bulk


def test_check_decision_is_applied_to_each_gate(
    reviewer: User, held: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = held["run"]
    refused = held["lib"][0].pk
    original = review.check_decision

    def check(approval: Approval, user: Any, decision: str, comment: str) -> None:
        if approval.pk == refused:
            raise DecisionRefused("Four-eyes rule: another reviewer decides this gate.")
        original(approval, user, decision, comment)

    monkeypatch.setattr(review, "check_decision", check)
    monkeypatch.setattr(enqueue, "send", lambda *args, **kwargs: None)
    result = decide_task_gates(run, reviewer, "approved", group="lib")
    assert result.decided == 1
    assert result.skipped == {"Four-eyes rule: another reviewer decides this gate.": 1}
    assert Approval.objects.get(pk=refused).decision == "pending"


def test_viewers_and_operators_cannot_decide_in_bulk(
    viewer_client: Client, operator_client: Client, held: dict[str, Any]
) -> None:
    for client in (viewer_client, operator_client):
        assert _bulk(client, held["run"], "approved", scope="*").status_code == 403
    assert Approval.objects.filter(decision="pending").count() == 7


def test_the_inbox_offers_the_run_and_each_of_its_groups(
    reviewer_client: Client, viewer_client: Client, held: dict[str, Any]
) -> None:
    run = held["run"]
    page = reviewer_client.get(INBOX).content.decode()
    panel = page.split('id="inbox-bulk"', 1)[1].split("</section>", 1)[0]
    assert f'action="{reverse("runs:decide_agents", args=[run.pk])}"' in panel
    assert '<option value="*">all 5 waiting agents</option>' in panel
    assert '<option value="g:app">group app (3)</option>' in panel
    assert '<option value="g:lib">group lib (2)</option>' in panel
    # A run with a single waiting agent needs no bulk form.
    other = held["other"][0].run
    assert reverse("runs:decide_agents", args=[other.pk]) not in panel
    as_viewer = viewer_client.get(INBOX).content.decode()
    assert reverse("runs:decide_agents", args=[run.pk]) not in as_viewer
    assert 'name="scope"' not in as_viewer


def test_with_htmx_the_answer_is_the_result_and_the_inbox_changes(
    reviewer_client: Client, held: dict[str, Any], sent: list[tuple[str, int]]
) -> None:
    run = held["run"]
    response = reviewer_client.post(
        reverse("runs:decide_agents", args=[run.pk]),
        {"decision": "approved", "scope": "g:app", "next": INBOX},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="inbox-bulk-result"')
    assert "Approved 3 waiting agents of run #" in html
    for gate in held["app"]:
        assert f'<li id="approval-{gate.pk}" hx-swap-oob="delete"></li>' in html
    for gate in held["lib"]:
        assert f"approval-{gate.pk}" not in html
    # The bulk panel follows: lib's two are left, so the run is still offered.
    panel = html.split('id="inbox-bulk"', 1)[1]
    assert 'hx-swap-oob="true"' in panel[:100]
    assert "all 2 waiting agents" in panel and "g:app" not in panel
    assert "4 gates waiting" in html
