"""Recovery in seconds (issue 20): a dead worker's agents taken over when its liveness key
expires, retrying agents re-sent after a real Redis restart lost their delayed messages, a
budget-exhausted run reaching its report whatever its agents were doing, and the run's cost
reconciled with its paid calls."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from harness_site import liveness
from harness_site.localredis import ensure_private_redis, stop_private_redis
from harness_site.redis_client import get_redis
from runs.actions import enqueue, launch_run
from runs.actions.dispatch import dispatch
from runs.actions.planning import plan_run
from runs.actions.reconcile import reconcile
from runs.actions.report import aggregate
from runs.actions.resend import resend_lost
from runs.actions.sweep import sweep
from runs.models import Event, Run, Step, Task
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(tmp_path: Path, settings: Any, monkeypatch: Any) -> list[tuple[str, int, float | None]]:
    """Every message this process sends, recorded instead of published (a broker that lost
    them all: only the sweeper can move the runs on)."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    messages: list[tuple[str, int, float | None]] = []

    def record(name: str, object_id: int, countdown: float | None = None) -> None:
        messages.append((name, object_id, countdown))

    monkeypatch.setattr(enqueue, "send", record)
    return messages


def _running_run(tmp_path: Path, files: int = 3, budget: str = "5") -> Run:
    target = make_target(tmp_path.resolve(), files)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=50,
        budget_usd=budget,
        options={"chunk_files": 1},
    )
    plan_run(run.pk)
    dispatch(run.pk)  # every agent queued; their messages recorded, never delivered
    return Run.objects.get(pk=run.pk)


def _agents(sent: list[tuple[str, int, float | None]]) -> list[int]:
    return [pk for name, pk, _ in sent if name == enqueue.RUN_AGENT]


def _liveness_settled(settings: Any) -> None:
    # The keys have been written for longer than a TTL: not a freshly restarted Redis.
    get_redis().set(f"{settings.HARNESS_REDIS_PREFIX}alive-since", time.time() - 600)


def test_a_dead_workers_agents_are_taken_over_not_a_live_ones(
    tmp_path: Path, sent: list[tuple[str, int, float | None]], settings: Any
) -> None:
    settings.HARNESS_AGENT_LEASE_S = 3600  # far off: only the liveness keys can tell
    run = _running_run(tmp_path)
    _liveness_settled(settings)
    dead, alive, *_ = Task.objects.filter(run=run).order_by("id")
    now = timezone.now()
    Task.objects.filter(pk=dead.pk).update(
        status="running", heartbeat_at=now, holder="killed-host:1:0000"
    )
    Task.objects.filter(pk=alive.pk).update(
        status="running", heartbeat_at=now, holder=liveness.me()
    )
    queued = set(Task.objects.filter(run=run, status="queued").values_list("pk", flat=True))
    sent.clear()
    done = resend_lost()
    # The dead worker may also have taken queued agents' messages (prefetched, unacknowledged
    # until the broker's visibility timeout): they are re-sent too.
    assert done == {run.pk: 1 + len(queued)}
    assert sorted(_agents(sent)) == sorted([dead.pk, *queued])
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == "running" and dead.holder == ""  # released: the re-sent message claims
    assert alive.holder == liveness.me()
    resent = Event.objects.get(run=run, type="task.resent", task=dead)
    assert resent.payload == {"was": "running", "why": "holder gone"}
    whys = Event.objects.filter(run=run, type="task.resent").exclude(task=dead)
    assert {e.payload["why"] for e in whys} == {"a worker died"}
    # The next sweep finds nothing more to take over.
    sent.clear()
    assert resend_lost() == {} and _agents(sent) == []


def test_no_holder_is_presumed_dead_while_the_keys_are_being_rewritten(
    tmp_path: Path, sent: list[tuple[str, int, float | None]], settings: Any
) -> None:
    run = _running_run(tmp_path)
    task = Task.objects.filter(run=run).first()
    assert task is not None
    Task.objects.filter(pk=task.pk).update(status="running", holder="maybe-alive:1:0000")
    # Redis just restarted: the since-marker is new, so a missing key proves nothing yet.
    get_redis().set(f"{settings.HARNESS_REDIS_PREFIX}alive-since", time.time())
    assert liveness.dead(["maybe-alive:1:0000"]) == set()
    _liveness_settled(settings)
    assert liveness.dead(["maybe-alive:1:0000", liveness.me()]) == {"maybe-alive:1:0000"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path, settings: Any) -> Iterator[tuple[Path, int, list[Any]]]:
    """A private redis-server this test may kill and restart; the process's client points at
    it for the test."""
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    procs = [ensure_private_redis(data, port)]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    get_redis.cache_clear()
    try:
        yield data, port, procs
    finally:
        for proc in procs:
            stop_private_redis(proc)
        get_redis.cache_clear()


def test_retrying_agents_are_re_sent_within_one_sweep_of_a_redis_restart(
    tmp_path: Path,
    sent: list[tuple[str, int, float | None]],
    settings: Any,
    own_redis: tuple[Path, int, list[Any]],
) -> None:
    data, port, procs = own_redis
    run = _running_run(tmp_path)
    soon, later, *_ = Task.objects.filter(run=run).order_by("id")
    now = timezone.now()
    # Two agents waiting to retry, their delayed messages in Redis: one due in 30 s, one overdue.
    Task.objects.filter(pk=soon.pk).update(status="retrying", retry_at=now - timedelta(seconds=1))
    Task.objects.filter(pk=later.pk).update(status="retrying", retry_at=now + timedelta(seconds=30))
    assert liveness.redis_lost_state() is True  # this Redis is new
    sent.clear()
    resend_lost(redis_lost=liveness.redis_lost_state())
    assert _agents(sent) == []  # nothing lost yet: the overdue one is within its grace
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    procs.append(ensure_private_redis(data, port))  # started again, empty (no persistence)
    get_redis().connection_pool.reset()
    sent.clear()
    sweep()
    by_task = {pk: countdown for name, pk, countdown in sent if name == enqueue.RUN_AGENT}
    assert soon.pk in by_task and later.pk in by_task
    assert by_task[soon.pk] is None  # overdue: at once
    # The other keeps what is left of its delay.
    left = by_task[later.pk]
    assert left is not None and 20 < left <= 30
    whys = set(
        Event.objects.filter(run=run, type="task.resent").values_list("payload__why", flat=True)
    )
    assert whys == {"redis restarted"}


def _paid_step(task: Task, index: int, cost: str) -> None:
    Step.objects.create(
        task=task, index=index, kind="chat", name="m", tokens_in=10, tokens_out=5, cost_usd=cost
    )


def test_a_budget_exhausted_run_with_agents_left_retrying_reaches_its_report(
    tmp_path: Path, sent: list[tuple[str, int, float | None]], settings: Any
) -> None:
    settings.HARNESS_STALL_S = 0.1
    run = _running_run(tmp_path, files=2)
    first, retrying, queued, *_ = Task.objects.filter(run=run).order_by("id")
    # One agent succeeded; one waits to retry (its delayed message lost), having paid a call;
    # one queued agent ran before and paid one too; the rest never started.
    _paid_step(first, 0, "0.004")
    Task.objects.filter(pk=first.pk).update(status="succeeded", cost_usd=Decimal("0.004"))
    Run.objects.filter(pk=run.pk).update(
        cost_usd=Decimal("0.004"), tokens_in=10, tokens_out=5, tasks_done=1
    )
    _paid_step(retrying, 0, "0.003")
    Task.objects.filter(pk=retrying.pk).update(
        status="retrying", retry_at=timezone.now() + timedelta(minutes=5)
    )
    _paid_step(queued, 0, "0.002")
    Run.objects.filter(pk=run.pk).update(status=Run.Status.BUDGET_EXHAUSTED)
    time.sleep(0.2)
    sweep()
    assert not Task.objects.filter(run=run).exclude(status__in=Task.Status.terminal()).exists()
    retrying.refresh_from_db()
    assert retrying.status == "skipped" and retrying.cost_usd == Decimal("0.003")
    assert (enqueue.AGGREGATE_RUN, run.pk, None) in sent
    aggregate(run.pk)
    finished = Run.objects.get(pk=run.pk)
    assert finished.status == Run.Status.BUDGET_EXHAUSTED and finished.finished_at is not None
    assert finished.reports.count() == 1
    # Every paid call is in the run's cost, with nothing left to reconcile.
    assert finished.cost_usd == Decimal("0.009")
    assert finished.tokens_in == 30 and finished.tokens_out == 15
    assert not Event.objects.filter(run=run, type="budget.reconciled").exists()


def test_a_drifted_run_cost_is_reconciled_once_and_logged(
    tmp_path: Path, sent: list[tuple[str, int, float | None]], caplog: pytest.LogCaptureFixture
) -> None:
    run = _running_run(tmp_path, files=1)
    ended, working, *_ = Task.objects.filter(run=run).order_by("id")
    _paid_step(ended, 0, "0.005")
    Task.objects.filter(pk=ended.pk).update(status="failed")
    _paid_step(working, 0, "0.007")  # still running: its try adds its calls when it ends
    Task.objects.filter(pk=working.pk).update(status="running")
    Run.objects.filter(pk=run.pk).update(cost_usd=Decimal("0.001"), tokens_in=10, tokens_out=5)
    assert reconcile(run.pk) == Decimal("0.004")
    fixed = Run.objects.get(pk=run.pk)
    assert fixed.cost_usd == Decimal("0.005") and fixed.tokens_in == 10
    event = Event.objects.get(run=run, type="budget.reconciled")
    assert event.payload == {
        "was_usd": "0.001000",
        "cost_usd": "0.005000",
        "drift_usd": "0.004000",
        "tokens_drift": 0,
    }
    assert "reconciled" in caplog.text
    assert reconcile(run.pk) is None  # nothing left to repair: no second event
    assert Event.objects.filter(run=run, type="budget.reconciled").count() == 1


def test_an_agent_whose_outcome_could_not_be_stored_is_handed_back_not_left_running(
    tmp_path: Path, sent: list[tuple[str, int, float | None]], monkeypatch: Any
) -> None:
    from django.db import OperationalError

    from agents.contract import ProviderError
    from agents.providers.heuristic import HeuristicProvider
    from runs.actions import outcomes
    from runs.engine import worker

    class Failing(HeuristicProvider):
        def run_agent(self, request: Any) -> Any:
            raise ProviderError("503 service unavailable", permanent=False)

    monkeypatch.setattr(worker, "get_provider", lambda name: Failing())
    monkeypatch.setattr("runs.engine.worker.time.sleep", lambda seconds: None)
    real_retry = outcomes.retry_task
    calls = {"n": 0}

    def retry_while_the_database_is_away(task: Task, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:  # the agent's own bookkeeping, then the first hand-back try
            raise OperationalError("server closed the connection unexpectedly")
        real_retry(task, **kwargs)

    monkeypatch.setattr("runs.engine.worker.retry_task", retry_while_the_database_is_away)
    run = _running_run(tmp_path, files=1)
    task = Task.objects.filter(run=run, status="queued").first()
    assert task is not None
    retry = worker.execute(task.pk)
    assert retry is not None  # the message is sent again, not lost
    task.refresh_from_db()
    assert task.status == "retrying" and task.retry_at is not None  # handed back
    assert calls["n"] == 3
