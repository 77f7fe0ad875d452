"""A finished run's page computes its tasks' tree and figures once and shows them again without
reading the tasks, until the run changes (a new event): then it shows the change. A live run's
page is computed every time."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.models import Run, Task
from runs.pages.run import finished
from tests.runs.factories import make_audit, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    finished.forget()
    yield
    finished.forget()


def _page(client: Client, run: Run) -> tuple[str, int]:
    """The page, and how many times it read the run's tasks."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("runs:detail", args=[run.pk]))
    assert response.status_code == 200
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('SELECT "runs_task"."id" AS "id", "runs_task"."run_id" AS')
    ]
    return response.content.decode(), len(reads)


def test_a_finished_runs_page_reads_its_tasks_once_until_the_run_changes(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    tasks = make_audit(run, ["a", "b"], files=3)
    first, reads = _page(viewer_client, run)
    assert reads == 1 and f'id="task-{tasks[0].pk}"' in first
    again, reads = _page(viewer_client, run)
    assert reads == 0
    assert again.count('class="node-row') == first.count('class="node-row')

    # A change of its tasks comes with an event of the run: its seq moves on.
    Task.objects.filter(pk=tasks[0].pk).update(cost_usd=Decimal("7.2500"))
    Run.objects.filter(pk=run.pk).update(last_seq=F("last_seq") + 1)
    changed, reads = _page(viewer_client, run)
    assert reads == 1 and "$7.2500" in changed and "$7.2500" not in again


def test_a_live_runs_page_reads_its_tasks_every_time(viewer_client: Client, operator: User) -> None:
    run = make_run(operator, status=Run.Status.RUNNING)
    make_audit(run, ["a"], files=2)
    assert _page(viewer_client, run)[1] == 1
    assert _page(viewer_client, run)[1] == 1
