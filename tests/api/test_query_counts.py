"""The API's lists cost the same handful of queries for 5 rows or 50 (no query per row)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from runs.actions.tokens import create_token
from runs.models import Approval, Run
from tests.runs.factories import make_finding, make_run, make_task

pytestmark = pytest.mark.django_db


def _queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def _grow(owner: Any, n: int) -> Run:
    run = None
    for _ in range(n):
        run = make_run(owner, status=Run.Status.AWAITING_REVIEW)
        task = make_task(run)
        make_finding(run, task)
        Approval.objects.create(run=run, gate="report", target_id=1, decided_by=owner)
    assert run is not None
    return run


@pytest.mark.parametrize(
    "path",
    ["/api/v1/runs/", "/api/v1/approvals/?decision=all", "/api/v1/runs/{run}/findings/"],
)
def test_list_queries_do_not_grow_with_rows(make_user, path: str) -> None:
    owner = make_user("operator")
    _, token = create_token(make_user("viewer"), "t", ["read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    run = _grow(owner, 5)
    _queries(client, path.format(run=run.pk))  # the token's first use is noted (one UPDATE)
    few = _queries(client, path.format(run=run.pk))
    _grow(owner, 45)
    task = run.tasks.get()
    for _ in range(45):
        make_finding(run, task)
    assert _queries(client, path.format(run=run.pk)) == few
    assert few <= 12
