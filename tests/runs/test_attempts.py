"""The agent page after retries: every attempt of every try, from the event log, and the
current try's own duration once an operator has retried it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Run, Task
from tests.runs.factories import emit, make_run, make_task

pytestmark = pytest.mark.django_db


def test_agent_page_lists_every_attempt_across_an_operator_retry(
    operator_client: Client, operator: User
) -> None:
    run = make_run(operator, status=Run.Status.FAILED, tasks_total=1, tasks_failed=1)
    task = make_task(run, status=Task.Status.FAILED, error="boom", attempts=2, max_attempts=2)
    emit(run, "task.started", task, attempt=1)
    emit(run, "task.retrying", task, attempt=1, delay_s=1.0, error="upstream 502")
    emit(run, "task.started", task, attempt=2)
    emit(run, "task.failed", task, error="boom", attempts=2)

    response = operator_client.post(reverse("runs:retry", args=[run.pk]))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == Task.Status.PENDING and task.attempts == 0
    assert task.started_at is None and task.finished_at is None  # a new try, timed on its own

    emit(run, "task.started", task, attempt=1)
    emit(run, "task.succeeded", task)
    html = operator_client.get(reverse("runs:task", args=[run.pk, task.pk])).content.decode()
    assert "3 in all, over 2 tries (retried by an operator)" in html
    assert html.count("<td>retried") == 1 and "upstream 502" in html
    assert "<td>failed" in html and "<td>succeeded" in html


def test_agent_page_shows_what_the_agent_kept_out_of_its_findings(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    task = make_task(
        run,
        output={
            "data": {
                "suppressed": [
                    {
                        "path": "app/db.py",
                        "line": 7,
                        "rule": "bandit.B608",
                        "title": "<script>alert(1)</script> SQL built from strings",
                        "severity": "high",
                        "cwe": "CWE-89",
                        "marker": "# nosec B608",
                    },
                    "not a dict",
                ],
                "skipped": [{"path": "static/vendor/chart.min.js", "reason": "minified"}],
                "dropped_findings": {"count": 3, "by_path": {"app/big.py": 3}},
            }
        },
    )
    html = viewer_client.get(reverse("runs:task", args=[run.pk, task.pk])).content.decode()
    assert "Suppressed" in html and "# nosec B608" in html and "CWE-89" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "static/vendor/chart.min.js" in html and "minified" in html
    assert "3 findings dropped" in html and "app/big.py" in html
