"""Every URL of the dashboard, by persona: anonymous, viewer, operator, reviewer, outsider."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Approval, Run, Task
from runs.pages.run import timeline
from tests.runs.factories import (
    emit,
    make_finding,
    make_report,
    make_run,
    make_task,
    make_tree,
    task_fields,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(operator: User) -> Run:
    run = make_run(operator)
    tasks = make_tree(run)
    make_finding(run, tasks[0])
    emit(run, "task.started", tasks[-1])
    run.refresh_from_db()
    return run


def read_urls(run: Run) -> list[str]:
    task = run.tasks.first()
    assert task is not None
    return [
        reverse("runs:list"),
        reverse("runs:detail", args=[run.pk]),
        reverse("runs:events", args=[run.pk]),
        reverse("runs:findings", args=[run.pk]),
        reverse("runs:task", args=[run.pk, task.pk]),
    ]


def action_urls(run: Run) -> list[str]:
    return [
        reverse("runs:cancel", args=[run.pk]),
        reverse("runs:retry", args=[run.pk]),
        reverse("runs:decide", args=[run.pk]),
    ]


def test_anonymous_is_sent_to_login_from_every_url(run: Run) -> None:
    client = Client()
    for url in [*read_urls(run), reverse("runs:launch"), *action_urls(run)]:
        response = client.get(url) if "cancel" not in url else client.post(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_viewer_reads_every_page(viewer_client: Client, run: Run) -> None:
    for url in read_urls(run):
        response = viewer_client.get(url)
        assert response.status_code == 200, url


def test_viewer_gets_403_on_launch_and_every_action(viewer_client: Client, run: Run) -> None:
    assert viewer_client.get(reverse("runs:launch")).status_code == 403
    assert viewer_client.post(reverse("runs:launch"), {"playbook": "x"}).status_code == 403
    for url in action_urls(run):
        assert viewer_client.post(url, {"decision": "approved"}).status_code == 403, url
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING


def test_viewer_does_not_see_launch_or_cancel_controls(viewer_client: Client, run: Run) -> None:
    page = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert reverse("runs:cancel", args=[run.pk]) not in page
    assert reverse("runs:launch") not in viewer_client.get(reverse("runs:list")).content.decode()


def test_operator_sees_cancel_and_can_cancel(operator_client: Client, run: Run) -> None:
    page = operator_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert reverse("runs:cancel", args=[run.pk]) in page
    response = operator_client.post(reverse("runs:cancel", args=[run.pk]))
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_cancel_and_retry_need_post(operator_client: Client, run: Run) -> None:
    assert operator_client.get(reverse("runs:cancel", args=[run.pk])).status_code == 405
    assert operator_client.get(reverse("runs:retry", args=[run.pk])).status_code == 405


def test_user_without_role_cannot_see_other_peoples_runs(
    make_user: Callable[..., User], run: Run
) -> None:
    client = Client()
    client.force_login(make_user(None))
    for url in read_urls(run)[1:]:
        assert client.get(url).status_code == 404, url
    assert f"#{run.pk}" not in client.get(reverse("runs:list")).content.decode()


def test_launcher_without_view_perm_sees_own_run(make_user: Callable[..., User]) -> None:
    owner = make_user(None)
    run = make_run(owner)
    client = Client()
    client.force_login(owner)
    assert client.get(reverse("runs:detail", args=[run.pk])).status_code == 200


def test_run_page_shows_tree_nodes_findings_and_events(viewer_client: Client, run: Run) -> None:
    page = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    for task in run.tasks.all():
        assert f'id="task-{task.pk}"' in page
        assert f'id="kids-{task.pk}"' in page
    assert "SQL built from user input" in page
    assert 'id="event-1"' in page
    assert f'data-seq="{run.last_seq}"' in page
    assert f'ws-connect="/ws/runs/{run.pk}/?since={run.last_seq}"' in page


def test_failed_node_shows_its_error(viewer_client: Client, operator: User) -> None:
    run = make_run(operator)
    make_task(run, status=Task.Status.FAILED, error="ProviderError: upstream timed out")
    page = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "ProviderError: upstream timed out" in page


def test_tree_search_without_js_lists_matches_with_a_link_into_the_tree(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    root = make_task(run, scope_label="app/")
    hit = make_task(run, parent=root, scope_label="app/db.py")
    miss = make_task(run, scope_label="web/static/app.js")
    page = viewer_client.get(reverse("runs:detail", args=[run.pk]), {"q": "db.py"})
    html = page.content.decode()
    assert "<b>1</b> agent match" in html
    assert f"?reveal={hit.pk}#node-{hit.pk}" in html
    assert f"?reveal={miss.pk}" not in html and f"?reveal={root.pk}" not in html


def test_report_html_is_rendered_and_reviewer_can_approve(
    reviewer_client: Client, viewer_client: Client, operator: User
) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    make_report(run, html="<h2>Summary</h2><p>Three <em>issues</em>.</p>")
    Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=1)
    viewer_page = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Three <em>issues</em>." in viewer_page
    assert reverse("runs:decide", args=[run.pk]) not in viewer_page
    page = reviewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert reverse("runs:decide", args=[run.pk]) in page
    response = reviewer_client.post(
        reverse("runs:decide", args=[run.pk]), {"decision": "approved", "comment": "ok"}
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.APPROVED
    approval = run.approvals.get()
    assert approval.decision == "approved" and approval.comment == "ok"


def test_operator_cannot_decide(operator_client: Client, operator: User) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=1)
    response = operator_client.post(reverse("runs:decide", args=[run.pk]), {"decision": "approved"})
    assert response.status_code == 403


def test_list_filters_by_status_and_playbook(viewer_client: Client, operator: User) -> None:
    running = make_run(operator, title="alpha-run")
    make_run(operator, title="beta-run", status=Run.Status.APPROVED)
    make_run(operator, title="gamma-run", playbook="ensemble")
    html = viewer_client.get(reverse("runs:list"), {"status": "approved"}).content.decode()
    assert "beta-run" in html and "alpha-run" not in html
    html = viewer_client.get(reverse("runs:list"), {"playbook": "ensemble"}).content.decode()
    assert "gamma-run" in html and "alpha-run" not in html
    html = viewer_client.get(reverse("runs:list"), {"status": "active"}).content.decode()
    assert f"#{running.pk}" in html and "beta-run" not in html


def test_list_is_paginated(viewer_client: Client, operator: User) -> None:
    for _ in range(30):
        make_run(operator)
    first = viewer_client.get(reverse("runs:list")).content.decode()
    assert first.count('<tr id="run-') == 25 and "page=2" in first
    second = viewer_client.get(reverse("runs:list"), {"page": 2}).content.decode()
    assert second.count('<tr id="run-') == 5


def _queries(django_assert_max_num_queries: Any, client: Client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_query_count_does_not_grow_with_runs(viewer_client: Client, operator: User) -> None:
    make_run(operator)
    few = _queries(None, viewer_client, reverse("runs:list"))
    for _ in range(20):
        make_run(operator)
    assert _queries(None, viewer_client, reverse("runs:list")) == few


def test_run_page_query_count_does_not_grow_with_agents(
    viewer_client: Client, operator: User
) -> None:
    small = make_run(operator)
    make_tree(small, roots=1, children=1, grandchildren=1)
    first_task = small.tasks.first()
    assert first_task is not None
    make_finding(small, first_task)
    emit(small, "task.started", small.tasks.last())
    big = make_run(operator)
    tasks = make_tree(big, roots=10, children=5, grandchildren=4)
    for task in tasks[:30]:
        make_finding(big, task)
        emit(big, "task.started", task)
    few = _queries(None, viewer_client, reverse("runs:detail", args=[small.pk]))
    many = _queries(None, viewer_client, reverse("runs:detail", args=[big.pk]))
    assert many == few
    assert many <= 15


def test_run_page_of_many_agents_draws_the_concurrency_chart_and_every_agent_aggregated(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator, max_concurrency=8)
    Task.objects.bulk_create([Task(**task_fields(run)) for _ in range(160)])
    Task.objects.bulk_create(
        [Task(**task_fields(run, status=Task.Status.PENDING, started_at=None, finished_at=None))]
    )
    html = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert 'data-chart="concurrency"' in html
    assert "cap 8" in html
    per_row = math.ceil(161 / timeline.AGGREGATE_ROWS)
    assert f"All 161 agents, {per_row} to a row" in html
    assert "not drawn" not in html
    last = 160 // per_row * per_row + 1
    assert f"agents {last}-161" in html
    assert "1 waiting to start, the longest for" in html


def test_counters_and_cost_panel_show_the_same_total_in_one_render(
    viewer_client: Client, operator: User
) -> None:
    # The run row a finished agent behind its tasks: what a render between two reads saw.
    run = make_run(operator, cost_usd=Decimal("0.0021"))
    for cost in ("0.0021", "0.0033", "0.0077"):
        make_task(run, cost_usd=Decimal(cost))
    make_task(run, status=Task.Status.RUNNING, finished_at=None, cost_usd=0, tokens_in=0)
    html = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    counter = re.search(r'data-stat="cost">\$([\d.]+)<', html)
    panel = re.search(r'data-stat="cost-total"><b>\$([\d.]+)<', html)
    assert counter and panel
    assert counter.group(1) == panel.group(1) == "0.0131"
    assert "<b>$0.0131</b> of $5.00" in html  # the budget panel's spend too


def test_findings_page_names_each_findings_cwe_with_a_link(viewer_client: Client, run: Run) -> None:
    task = run.tasks.first()
    assert task is not None
    make_finding(run, task, title="Query built from input", cwe=89)
    html = viewer_client.get(reverse("runs:findings", args=[run.pk])).content.decode()
    assert 'href="https://cwe.mitre.org/data/definitions/89.html"' in html
    assert html.count("CWE-") == 1  # the factory's other finding has none
