"""Dismissing a finding can re-run only the agents behind it: who may, the estimate shown
before confirming, the refusal when the budget left does not cover it, and (through the real
engine, in this process) exactly that agent re-running into a new report version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from runs.actions import enqueue, launch_run
from runs.actions.dispatch import dispatch
from runs.actions.planning import plan_run
from runs.actions.report import aggregate
from runs.engine import worker
from runs.models import Approval, Event, Finding, Run, Step, Task
from tests.engine.helpers import make_target
from tests.runs.factories import make_finding, make_report, make_run, make_task


@pytest.fixture
def both_client(make_user: Callable[..., User]) -> Client:
    """A person with the reviewer and the operator roles."""
    from runs.roles import ensure_roles

    user = make_user("reviewer", username="reviewer-operator")
    user.groups.add(ensure_roles()["operator"])
    client = Client()
    client.force_login(user)
    return client


def _waiting_run(operator: User, **fields: Any) -> tuple[Run, Task, Task, Finding]:
    # The run's counters as its two agents (the factory's: 1200 + 300 tokens each) left them.
    counters: dict[str, Any] = {"tasks_total": 2, "tasks_done": 2, "findings_count": 2}
    counters.update(tokens_in=2400, tokens_out=600, cost_usd=Decimal("0.0042"))
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW, **{**counters, **fields})
    make_report(run)
    Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=1)
    behind, bystander = make_task(run), make_task(run)
    make_finding(run, bystander)
    return run, behind, bystander, make_finding(run, behind, title="Hard-coded password")


def _url(finding: Finding) -> str:
    return reverse("runs:rerun_finding", args=[finding.run_id, finding.pk])


@pytest.mark.django_db
def test_only_people_who_review_and_operate_may_dismiss_and_rerun(
    viewer_client: Client,
    reviewer_client: Client,
    operator_client: Client,
    both_client: Client,
    operator: User,
) -> None:
    run, behind, _, finding = _waiting_run(operator)
    for client in (viewer_client, reviewer_client, operator_client):
        assert client.get(_url(finding)).status_code == 403
        assert client.post(_url(finding), {"comment": "noise"}).status_code == 403
    finding.refresh_from_db()
    behind.refresh_from_db()
    assert finding.review == "open" and behind.status == Task.Status.SUCCEEDED
    assert not Event.objects.filter(run=run).exists()
    # Only those who may see it get the button on the findings page.
    page = reviewer_client.get(reverse("runs:findings", args=[run.pk])).content.decode()
    assert "Dismiss &amp; re-run" not in page
    page = both_client.get(reverse("runs:findings", args=[run.pk])).content.decode()
    assert page.count("Dismiss &amp; re-run") == 2


@pytest.mark.django_db
def test_the_confirmation_shows_the_agents_and_their_estimated_cost(
    both_client: Client, operator: User
) -> None:
    run, behind, bystander, finding = _waiting_run(
        operator, budget_usd=Decimal("1"), cost_usd=Decimal("0.25")
    )
    estimate = reverse("runs:rerun_estimate", args=[run.pk, finding.pk])
    page = both_client.post(estimate, {"comment": "a fixture"}).content.decode()
    assert reverse("runs:task", args=[run.pk, behind.pk]) in page
    assert reverse("runs:task", args=[run.pk, bystander.pk]) not in page
    assert "$0.0021" in page and "1500 tokens" in page  # the agent's previous try
    assert "$0.7500" in page  # left of the budget
    assert 'value="a fixture"' in page and "Dismiss and re-run</button>" in page
    # The findings page's slot gets the partial alone.
    part = both_client.post(estimate, HTTP_HX_REQUEST="true").content.decode()
    assert part.lstrip().startswith(f'<div id="rerun-{finding.pk}"') and "<html" not in part
    # Asking for the estimate changes nothing, and is never a GET (the row's form carries the
    # CSRF token); the GET of the re-run page (where a refusal comes back) shows it too.
    assert both_client.get(estimate).status_code == 405
    assert "Estimated cost" in both_client.get(_url(finding)).content.decode()
    finding.refresh_from_db()
    assert finding.review == "open" and not Event.objects.filter(run=run).exists()


class _Urls(HTMLParser):
    """Every URL a page can send the browser to, and each form's method and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.urls += [a[k] for k in ("href", "src", "action", "formaction", "hx-get") if k in a]
        if tag == "form":
            self.forms.append({"method": a.get("method", "get").lower(), "csrf": False, "gets": 0})
        elif self.forms and tag in ("input", "button"):
            form = self.forms[-1]
            form["csrf"] |= a.get("name") == "csrfmiddlewaretoken"
            form["gets"] += a.get("formmethod", "").lower() == "get" or "hx-get" in a


@pytest.mark.django_db
def test_no_url_on_the_findings_page_carries_the_csrf_token(
    both_client: Client, operator: User
) -> None:
    run, _, _, finding = _waiting_run(operator)
    estimate = reverse("runs:rerun_estimate", args=[run.pk, finding.pk])
    pages = [
        both_client.get(reverse("runs:findings", args=[run.pk])).content.decode(),
        both_client.post(estimate, {"comment": "x"}, HTTP_HX_REQUEST="true").content.decode(),
        both_client.get(_url(finding)).content.decode(),
    ]
    for html in pages:
        parser = _Urls()
        parser.feed(html)
        assert parser.urls and not [u for u in parser.urls if "csrfmiddlewaretoken" in u]
        with_token = [f for f in parser.forms if f["csrf"]]
        assert with_token, "the page's forms carry the token"
        # A form holding the token is only ever sent as a POST, whichever button sends it.
        assert all(f["method"] == "post" and f["gets"] == 0 for f in with_token), with_token
    assert f'hx-post="{estimate}"' in pages[0] and f'formaction="{estimate}"' in pages[0]


@pytest.mark.django_db
def test_a_rerun_the_budget_left_cannot_cover_is_refused_and_changes_nothing(
    both_client: Client, operator: User
) -> None:
    run, behind, _, finding = _waiting_run(
        operator, budget_usd=Decimal("0.003"), cost_usd=Decimal("0.0025")
    )
    page = both_client.get(_url(finding)).content.decode()
    assert "The remaining budget does not cover it" in page
    assert "Dismiss and re-run</button>" not in page
    page = both_client.post(_url(finding), {"comment": "noise"}, follow=True).content.decode()
    assert "about $0.0021 needed, $0.0005 left" in page
    finding.refresh_from_db()
    behind.refresh_from_db()
    run.refresh_from_db()
    assert finding.review == "open" and behind.status == Task.Status.SUCCEEDED
    assert run.status == Run.Status.AWAITING_REVIEW and not run.events.exists()
    # A dismissal without a comment is refused the same way, and so is one of a run not at
    # its gate.
    run.budget_usd = Decimal("5")
    run.save()
    page = both_client.post(_url(finding), {"comment": " "}, follow=True).content.decode()
    assert "Dismissing a finding needs a comment" in page
    assert Task.objects.get(pk=behind.pk).status == Task.Status.SUCCEEDED
    Run.objects.filter(pk=run.pk).update(status=Run.Status.APPROVED)
    assert "only while the run" in both_client.get(_url(finding)).content.decode()


def _drain(run: Run) -> None:
    """Dispatch and run every ready agent in this process, as workers would."""
    for _ in range(50):
        queued = list(Task.objects.filter(run=run, status__in=["queued", "retrying"]))
        if not queued:
            dispatch(run.pk)
            queued = list(Task.objects.filter(run=run, status="queued"))
            if not queued:
                break
        for task in queued:
            worker.execute(task.pk)
    aggregate(run.pk)  # its message is not sent here


@pytest.mark.django_db(transaction=True)
def test_dismiss_and_rerun_runs_exactly_that_agent_into_a_new_version(
    tmp_path: Path, settings: Any, monkeypatch: Any, operator: User, both_client: Client
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn()
    )
    run = launch_run(
        user=operator,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 3)),
        max_concurrency=2,
        budget_usd="5",
        aggregation=["dedup"],
        options={"chunk_files": 1},
    )
    plan_run(run.pk)
    _drain(run)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    finding = Finding.objects.filter(run=run).order_by("id").first()
    assert finding is not None
    behind = finding.task
    before = {t.pk: (t.status, t.finished_at, t.attempts) for t in Task.objects.filter(run=run)}
    first_try = list(Step.objects.filter(task=behind).values_list("index", flat=True))
    assert first_try and max(first_try) < 1_000_000
    totals = (run.tokens_in, run.tokens_out, run.cost_usd, run.findings_count)

    response = both_client.post(_url(finding), {"comment": "a test fixture, not shipped"})
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.review == "dismissed"
    gate = Approval.objects.get(run=run, gate="report")
    assert gate.decision == "rejected" and gate.comment.startswith("Superseded")
    resumed = Event.objects.get(run=run, type="run.resumed").payload
    assert resumed["finding"] == finding.pk and resumed["agents"] == [behind.pk]
    assert resumed["by"] == "reviewer-operator"
    decided = Event.objects.get(run=run, type="approval.decided").payload
    assert decided["decision"] == "dismissed" and decided["by"] == "reviewer-operator"
    retried = Event.objects.filter(run=run, type="task.retry_requested")
    assert [e.task_id for e in retried] == [behind.pk]
    # The earlier try's step is kept, out of the new try's way.
    kept = list(Step.objects.filter(task=behind).values_list("index", flat=True))
    assert kept == [1_000_000 + i for i in first_try]

    _drain(run)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    after = {t.pk: (t.status, t.finished_at, t.attempts) for t in Task.objects.filter(run=run)}
    changed = {pk for pk in before if before[pk] != after[pk]}
    assert changed == {behind.pk}
    assert after[behind.pk][0] == Task.Status.SUCCEEDED
    new_try = Step.objects.filter(task=behind, index__lt=1_000_000)
    assert sorted(new_try.values_list("index", flat=True)) == sorted(first_try)  # ran again
    # The run's totals add the new try's calls to what was spent, counting none twice.
    spent = new_try.aggregate(tin=Sum("tokens_in"), tout=Sum("tokens_out"), usd=Sum("cost_usd"))
    assert spent["tin"] and spent["usd"]  # the offline analyzer's simulated usage
    assert (run.tokens_in, run.tokens_out, run.cost_usd, run.findings_count) == (
        totals[0] + spent["tin"],
        totals[1] + spent["tout"],
        totals[2] + spent["usd"],
        totals[3],
    )
    tasks = Task.objects.filter(run=run).aggregate(tin=Sum("tokens_in"), usd=Sum("cost_usd"))
    assert run.tokens_in == tasks["tin"]
    assert abs(run.cost_usd - tasks["usd"]) < Decimal("0.000001")  # SQLite sums decimals loosely
    v2 = run.reports.order_by("-version").first()
    assert v2 is not None and v2.version == 2
    assert finding.pk not in {i for c in v2.clusters for i in c["finding_ids"]}
    assert any("1 finding dismissed" in n for n in v2.notes)
    assert Approval.objects.get(run=run, gate="report", decision="pending").target_id == v2.pk


@pytest.mark.django_db
def test_the_event_log_says_who_dismissed_which_finding_and_which_agents_rerun(
    both_client: Client, operator: User, monkeypatch: Any
) -> None:
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    run, behind, _, finding = _waiting_run(operator)
    both_client.post(_url(finding), {"comment": "a fixture"})
    page = both_client.get(reverse("runs:events", args=[run.pk])).content.decode()
    agent = reverse("runs:task", args=[run.pk, behind.pk])
    said = f"by reviewer-operator: finding #{finding.pk} dismissed, re-running agent "
    assert f'{said}<a href="{agent}">' in page
    assert "dismissed by reviewer-operator: Hard-coded password" in page


def _header(html: str) -> str:
    return html.split('id="run-header"', 1)[1].split('<div class="run-actions">', 1)[0]


def _duration_shown(html: str) -> str:
    counters = html.split('<span class="stat-label">Duration</span>', 1)[1]
    return counters.split('<span class="stat-value">', 1)[1].split("</span>", 1)[0]


@pytest.mark.django_db(transaction=True)
def test_after_a_rerun_the_header_and_the_duration_say_what_the_run_is_now(
    tmp_path: Path, settings: Any, monkeypatch: Any, operator: User, both_client: Client
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn()
    )
    run = launch_run(
        user=operator,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 2)),
        budget_usd="5",
        aggregation=["dedup"],
    )
    plan_run(run.pk)
    _drain(run)
    # The first pass worked 12 s, then its report waited 300 s for a reviewer.
    end = timezone.now() - timedelta(seconds=300)
    Run.objects.filter(pk=run.pk).update(started_at=end - timedelta(seconds=12), finished_at=end)
    finding = Finding.objects.filter(run=run).order_by("id").first()
    assert finding is not None
    both_client.post(_url(finding), {"comment": "a test fixture, not shipped"})
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    page = both_client.get(run.get_absolute_url()).content.decode()
    assert "re-running 1 agent:" in _header(page)  # true while it re-runs
    assert run.duration_seconds is not None and 12 <= run.duration_seconds < 40

    _drain(run)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    page = both_client.get(run.get_absolute_url()).content.decode()
    assert "re-running" not in _header(page) and "Awaiting Review" in _header(page)
    # The working time: 12 s and the re-run's, not the 300 s the report waited.
    assert run.duration_seconds is not None and 12 <= run.duration_seconds < 40
    assert _duration_shown(page) == f"{run.duration_seconds:.0f}s"
