"""An agent's claim brings its first read with it: the agents a worker starts together are read
and claimed in one transaction whose number of queries does not grow with the batch, and each
agent gets back its row, its run and its parent's span id. A running agent is taken over only
from a gone or lapsed holder; a stopped run's agent, a finished one or a missing one is not
claimed."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from harness_site import liveness
from harness_site.redis_client import get_redis
from runs.actions.claims import claim_agents
from runs.models import Event, Run, Task
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _queries_to_claim(count: int) -> int:
    run = make_run(status=Run.Status.RUNNING)
    parent = make_task(run, status="succeeded", span_id="00f067aa0ba902b7")
    ids = [
        make_task(run, parent=parent, status="queued", attempts=0, started_at=None).pk
        for _ in range(count)
    ]
    with CaptureQueriesContext(connection) as queries:
        claims = claim_agents(ids)
    assert [c.won for c in claims] == [True] * count
    for claim in claims:
        assert claim.task is not None and claim.fresh
        assert (claim.task.status, claim.task.attempts, claim.task.holder) == (
            "running",
            1,
            liveness.me(),
        )
    # The agent reads nothing more: its run and its parent's span id came with the claim.
    with CaptureQueriesContext(connection) as after:
        task = claims[-1].task
        assert task is not None
        assert task.run.pk == run.pk and task.run.config == run.config
        assert getattr(task, "parent_span", None) == "00f067aa0ba902b7"
    assert len(after) == 0
    rows = Task.objects.filter(pk__in=ids)
    assert {(t.status, t.attempts, t.holder) for t in rows} == {("running", 1, liveness.me())}
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert Event.objects.filter(run=run, type="task.started").count() == count
    return len(queries)


def test_agents_started_together_are_read_and_claimed_in_a_fixed_number_of_queries() -> None:
    assert _queries_to_claim(12) == _queries_to_claim(2)


def test_a_running_agent_is_taken_over_only_from_a_gone_or_lapsed_holder(settings: Any) -> None:
    settings.HARNESS_AGENT_LEASE_S = 3600
    # The liveness keys have been written for longer than a TTL: a missing key means gone.
    get_redis().set(f"{settings.HARNESS_REDIS_PREFIX}alive-since", time.time() - 600)
    run = make_run(status=Run.Status.RUNNING)
    now = timezone.now()
    started = now - timedelta(minutes=5)
    fields: dict[str, Any] = {"status": "running", "attempts": 1, "started_at": started}
    gone = make_task(run, holder="killed-host:1:0000", heartbeat_at=now, **fields)
    live = make_task(run, holder=liveness.me(), heartbeat_at=now, **fields)
    lapsed = make_task(run, holder=liveness.me(), heartbeat_at=now - timedelta(hours=2), **fields)
    released = make_task(run, holder="", heartbeat_at=now, **fields)

    claims = claim_agents([gone.pk, live.pk, lapsed.pk, released.pk])

    assert [c.won for c in claims] == [True, False, True, True]
    # A taken-over agent has stored calls to replay: not fresh, its first start kept.
    assert [c.fresh for c in claims] == [False] * 4
    for task in (gone, lapsed, released):
        task.refresh_from_db()
        assert (task.attempts, task.holder, task.started_at) == (2, liveness.me(), started)
    live.refresh_from_db()
    assert live.attempts == 1
    assert claims[1].task is not None and claims[1].task.status == "running"


@pytest.mark.parametrize("status", ["cancelled", "failed", "budget_exhausted"])
def test_a_stopped_runs_agent_is_not_claimed_and_is_told_so(status: str) -> None:
    run = make_run(status=Run.Status.RUNNING)
    task = make_task(run, status="queued", attempts=0)
    Run.objects.filter(pk=run.pk).update(status=status)

    [claim] = claim_agents([task.pk])

    assert (claim.won, claim.stopped) == (False, True)
    assert claim.task is not None and claim.task.run.status == status
    task.refresh_from_db()
    assert (task.status, task.attempts) == ("queued", 0)
    assert not Event.objects.filter(run=run, type="task.started").exists()


def test_a_finished_or_missing_agent_is_not_claimed() -> None:
    run = make_run(status=Run.Status.RUNNING)
    done = make_task(run, status="succeeded", attempts=1)

    gone, finished = claim_agents([done.pk + 1000, done.pk])

    assert gone.task is None and not gone.won
    assert finished.task is not None and finished.task.is_terminal and not finished.won
    done.refresh_from_db()
    assert done.attempts == 1
