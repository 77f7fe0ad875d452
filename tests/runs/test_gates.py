"""Human gates: who may decide, the comment a rejection needs, the four-eyes rule, a stale
decision refused with who decided, request changes keeping the gate open, every decision an
event, and the approvals inbox (agents waiting one by one)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from runs.models import Approval, Event, Report, Run, Task
from tests.runs.factories import make_report, make_run, make_task

pytestmark = pytest.mark.django_db


def _report_gate(launcher: User) -> tuple[Run, Approval]:
    run = make_run(launcher, status=Run.Status.AWAITING_REVIEW)
    make_report(run)
    gate = Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=1)
    return run, gate


def _decide(client: Client, run: Run, gate: Approval | None, decision: str, comment: str = ""):
    data = {"decision": decision, "comment": comment}
    if gate is not None:
        data["approval"] = str(gate.pk)
    return client.post(reverse("runs:decide", args=[run.pk]), data, follow=True)


def _decisions(run: Run) -> list[dict[str, object]]:
    return [
        e.payload
        for e in Event.objects.filter(run=run, type__startswith="approval.").order_by("seq")
    ]


def test_a_rejection_needs_a_comment_and_every_decision_is_an_event(
    reviewer_client: Client, operator: User
) -> None:
    run, gate = _report_gate(operator)
    page = _decide(reviewer_client, run, gate, "rejected").content.decode()
    assert "A rejection needs a comment saying why." in page
    gate.refresh_from_db()
    assert gate.decision == "pending" and _decisions(run) == []

    _decide(reviewer_client, run, gate, "rejected", "The SQL findings are not evidenced.")
    gate.refresh_from_db()
    run.refresh_from_db()
    assert gate.decision == "rejected" and run.status == Run.Status.REJECTED
    (event,) = _decisions(run)
    assert event["decision"] == "rejected" and str(event["comment"]).startswith("The SQL findings")


def test_viewers_and_operators_cannot_decide(
    viewer_client: Client, operator_client: Client, operator: User
) -> None:
    run, gate = _report_gate(operator)
    for client in (viewer_client, operator_client):
        assert _decide(client, run, gate, "approved").status_code == 403
    gate.refresh_from_db()
    assert gate.decision == "pending"


def test_a_stale_decision_is_refused_saying_who_decided(
    reviewer_client: Client, make_user: Callable[..., User], operator: User
) -> None:
    run, gate = _report_gate(operator)
    other = Client()
    other.force_login(make_user("reviewer", username="second-reviewer"))
    _decide(reviewer_client, run, gate, "approved")
    page = _decide(other, run, gate, "rejected", "too late").content.decode()
    assert "Already decided: approved by" in page
    gate.refresh_from_db()
    assert gate.decision == "approved" and len(_decisions(run)) == 1


@override_settings(HARNESS_FOUR_EYES=True)
def test_four_eyes_the_launcher_cannot_decide_its_own_report(
    reviewer: User, reviewer_client: Client, make_user: Callable[..., User]
) -> None:
    run, gate = _report_gate(reviewer)
    page = _decide(reviewer_client, run, gate, "approved").content.decode()
    assert "Four-eyes rule" in page
    gate.refresh_from_db()
    assert gate.decision == "pending"
    html = reviewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "another reviewer decides its report" in html and "Approve report" not in html
    other = Client()
    other.force_login(make_user("reviewer", username="second-pair-of-eyes"))
    _decide(other, run, gate, "approved")
    gate.refresh_from_db()
    assert gate.decision == "approved"


def test_requesting_changes_keeps_the_gate_open_and_shows_on_the_report(
    reviewer_client: Client, operator: User
) -> None:
    run, gate = _report_gate(operator)
    page = _decide(reviewer_client, run, gate, "changes_requested").content.decode()
    assert "A request for changes needs a comment" in page
    _decide(reviewer_client, run, gate, "changes_requested", "Re-run with the ensemble chain.")
    gate.refresh_from_db()
    run.refresh_from_db()
    assert gate.decision == "pending" and run.status == Run.Status.AWAITING_REVIEW
    html = reviewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Changes requested" in html and "Re-run with the ensemble chain." in html
    assert [e["gate"] for e in _decisions(run)] == ["report"]


def test_approving_one_of_ten_waiting_agents_starts_exactly_that_one(
    reviewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    other_run = make_run(operator)
    waiting = [
        make_task(run, status=Task.Status.AWAITING_APPROVAL, needs_approval=True, finished_at=None)
        for _ in range(10)
    ]
    bystander = make_task(other_run, status=Task.Status.AWAITING_APPROVAL, finished_at=None)
    gates = [
        Approval.objects.create(
            run=run, gate=Approval.Gate.TASK, target_id=t.pk, target_label=t.scope_label
        )
        for t in waiting
    ]
    Approval.objects.create(run=other_run, gate=Approval.Gate.TASK, target_id=bystander.pk)
    inbox = reviewer_client.get(reverse("runs:inbox")).content.decode()
    assert inbox.count('name="approval"') == 11
    assert 'class="count-badge" title="gates waiting for a decision">11</span>' in inbox

    _decide(reviewer_client, run, gates[3], "approved")
    statuses = dict(Task.objects.filter(run=run).values_list("pk", "status"))
    assert statuses[waiting[3].pk] in (Task.Status.PENDING, Task.Status.QUEUED)
    assert [statuses[t.pk] for t in waiting if t != waiting[3]] == ["awaiting_approval"] * 9
    bystander.refresh_from_db()
    assert bystander.status == Task.Status.AWAITING_APPROVAL
    assert (
        reviewer_client.get(reverse("runs:inbox")).content.decode().count('name="approval"') == 10
    )


def test_the_inbox_shows_only_runs_the_user_may_see(
    make_user: Callable[..., User], operator: User
) -> None:
    _report_gate(operator)
    outsider = make_user(None)
    client = Client()
    client.force_login(outsider)
    page = client.get(reverse("runs:inbox")).content.decode()
    assert "Nothing is waiting" in page
    assert Client().get(reverse("runs:inbox")).status_code == 302


def test_reviewers_accept_and_dismiss_single_findings(
    reviewer_client: Client, operator_client: Client, operator: User
) -> None:
    from tests.runs.factories import make_finding

    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    task = make_task(run)
    keep, drop = make_finding(run, task), make_finding(run, task)
    url = lambda f: reverse("runs:review_finding", args=[run.pk, f.pk])  # noqa: E731
    assert operator_client.post(url(keep), {"decision": "accepted"}).status_code == 403
    reviewer_client.post(url(keep), {"decision": "accepted"})
    page = reviewer_client.post(url(drop), {"decision": "dismissed"}, follow=True)
    assert "Dismissing a finding needs a comment" in page.content.decode()
    reviewer_client.post(url(drop), {"decision": "dismissed", "comment": "test fixture"})
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert (keep.review, drop.review) == ("accepted", "dismissed")
    again = reviewer_client.post(url(keep), {"decision": "dismissed", "comment": "no"}, follow=True)
    assert "already reviewed by" in again.content.decode()
    assert [e["decision"] for e in _decisions(run)] == ["accepted", "dismissed"]
    html = reviewer_client.get(reverse("runs:findings", args=[run.pk])).content.decode()
    assert "review-accepted" in html and "review-dismissed" in html


def test_held_agents_wait_and_the_rest_of_the_run_goes_on(
    operator_client: Client,
    reviewer_client: Client,
    tmp_path: object,
    settings: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    from runs.actions import enqueue
    from runs.actions.dispatch import dispatch
    from runs.actions.planning import plan_run
    from tests.engine.helpers import make_target

    root = Path(str(tmp_path)).resolve()
    settings.HARNESS_TARGET_ROOTS = [root]  # type: ignore[attr-defined]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    target = make_target(root, 2)
    response = operator_client.post(
        reverse("runs:launch"),
        {
            "playbook": "codebase-audit",
            "target": str(target),
            "provider": "heuristic",
            "max_concurrency": 4,
            "max_depth": 1,
            "max_agents": 500,
            "budget_usd": "1",
            "aggregation": ["dedup"],
            "hold_agents": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    run = Run.objects.get()
    plan_run(run.pk)
    with monkeypatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
        dispatch(run.pk)
    held = list(Task.objects.filter(run=run).order_by("id"))
    assert held and {t.status for t in held} == {Task.Status.AWAITING_APPROVAL}
    gates = list(Approval.objects.filter(run=run, gate=Approval.Gate.TASK).order_by("target_id"))
    assert [g.target_id for g in gates] == [t.pk for t in held]
    _decide(reviewer_client, run, gates[0], "approved")
    with monkeypatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
        dispatch(run.pk)
    statuses = dict(Task.objects.filter(run=run).values_list("pk", "status"))
    assert statuses[held[0].pk] == Task.Status.QUEUED  # started: exactly that one
    assert {statuses[t.pk] for t in held[1:]} == {Task.Status.AWAITING_APPROVAL}


def test_the_reviewers_comment_is_shown_beside_the_decision_escaped(
    reviewer_client: Client, operator: User
) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    report = make_report(run)
    gate = Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=report.pk)
    detail = reverse("runs:detail", args=[run.pk])
    version = reverse("runs:report", args=[run.pk, report.version])
    assert 'class="decision' not in reviewer_client.get(detail).content.decode()
    comment = 'The <script>alert("x")</script> findings are not evidenced.'
    _decide(reviewer_client, run, gate, "rejected", comment)
    escaped = "The &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; findings are not evidenced."
    for url in (detail, version):
        html = reviewer_client.get(url).content.decode()
        assert '<p class="decision decision-rejected"><b>Rejected</b>' in html, url
        assert "by reviewer" in html and escaped in html and "<script>alert" not in html
    # A later version has its own gate: the earlier decision is not shown as its own.
    newer = Report.objects.create(run=run, version=2, chain=["dedup"], html="", source_text="")
    later = reviewer_client.get(reverse("runs:report", args=[run.pk, newer.version])).content
    assert b'class="decision' not in later and b"not evidenced" not in later


def test_the_inbox_lists_recent_decisions_of_visible_runs_only(
    reviewer_client: Client, operator: User, make_user: Callable[..., User]
) -> None:
    run, gate = _report_gate(operator)
    run.title = "nightly audit"
    run.save(update_fields=["title"])
    inbox = reverse("runs:inbox")
    assert "No gate has been decided yet." in reviewer_client.get(inbox).content.decode()
    _decide(reviewer_client, run, gate, "rejected", "Findings <b>not</b> evidenced.")
    html = reviewer_client.get(inbox).content.decode()
    row = html[html.index(f'<tr id="decided-{gate.pk}">') :]
    row = row[: row.index("</tr>")]
    assert f'href="{run.get_absolute_url()}"' in row and "nightly audit" in row
    assert "Rejected" in row and "reviewer" in row and " ago</time>" in row
    assert "Findings &lt;b&gt;not&lt;/b&gt; evidenced." in row  # a person's text, escaped
    # The same visibility as the open gates: a user who may not see the run sees nothing of it.
    outsider = Client()
    outsider.force_login(make_user(None))
    hidden = outsider.get(inbox).content.decode()
    assert "nightly audit" not in hidden and f"decided-{gate.pk}" not in hidden
    assert "No gate has been decided yet." in hidden
    # Closed by the harness (the run went on), not by a person: said so.
    _, superseded = _report_gate(operator)
    Approval.objects.filter(pk=superseded.pk).update(
        decision=Approval.Decision.REJECTED, comment="Superseded", decided_at=timezone.now()
    )
    html = reviewer_client.get(inbox).content.decode()
    row = html[html.index(f'<tr id="decided-{superseded.pk}">') :]
    assert "the harness" in row[: row.index("</tr>")]
    assert html.index(f"decided-{superseded.pk}") < html.index(f"decided-{gate.pk}")  # newest first
