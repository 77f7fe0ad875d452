"""Worker failure handling, in process: transient errors back off with growing delays, permanent
ones fail only their own task, a cancelled run stops its agents."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agents.contract import ProviderError, ProviderRateLimited
from agents.providers.heuristic import HeuristicProvider
from harness_site import liveness
from harness_site.redis_client import get_redis
from runs.actions import cancel_run, enqueue, launch_run
from runs.actions.dispatch import dispatch
from runs.actions.planning import plan_run
from runs.engine import worker
from runs.models import Event, Run, Task
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyProvider(HeuristicProvider):
    """Fails the first ``transient`` calls of every agent, and every call on ``doomed`` paths."""

    def __init__(self, transient: int = 0, doomed: str = "") -> None:
        self.transient = transient
        self.doomed = doomed
        self.calls: dict[int, int] = {}

    def run_agent(self, request: Any) -> Any:
        n = self.calls[request.task_id] = self.calls.get(request.task_id, 0) + 1
        if self.doomed and any(self.doomed in f for f in request.scope.get("files", [])):
            raise ProviderError("400 bad request: the model rejected the prompt", permanent=True)
        if n <= self.transient:
            raise ProviderError("503 service unavailable", permanent=False)
        return super().run_agent(request)


@pytest.fixture
def planned_run(tmp_path: Path, settings: Any, monkeypatch: Any) -> Run:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    # No Celery here: the test drives plan → dispatch → execute itself.
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    target = make_target(tmp_path.resolve(), 3)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=20,
        options={"chunk_files": 1},
    )
    plan_run(run.pk)
    dispatch(run.pk)
    return Run.objects.get(pk=run.pk)


def _use(monkeypatch: Any, provider: Any) -> None:
    monkeypatch.setattr(worker, "get_provider", lambda name: provider)


def test_transient_errors_are_retried_with_growing_delays(planned_run: Run, monkeypatch: Any):
    _use(monkeypatch, FlakyProvider(transient=3))
    task = Task.objects.filter(run=planned_run).first()
    assert task is not None
    delays = []
    for _ in range(3):
        retry = worker.execute(task.pk)
        assert retry is not None
        delays.append(retry.countdown)
        assert Task.objects.get(pk=task.pk).status == Task.Status.RETRYING
    # Full jitter within doubling ceilings: 1-2 s, 2-4 s, 4-8 s.
    assert delays == sorted(delays)
    assert [
        worker.BACKOFF_BASE_S * 2**i / 2 <= d <= worker.BACKOFF_BASE_S * 2**i
        for i, d in enumerate(delays)
    ] == [True, True, True]
    assert worker.execute(task.pk) is None
    task.refresh_from_db()
    assert task.status == Task.Status.SUCCEEDED and task.attempts == 4
    events = Event.objects.filter(task=task, type="task.retrying")
    assert [e.payload["attempt"] for e in events] == [1, 2, 3]


def test_retry_after_is_honoured_over_backoff():
    assert worker.backoff_delay(1, retry_after=30) == 30
    assert 1 <= worker.backoff_delay(1) <= 2
    assert worker.backoff_delay(20) <= worker.BACKOFF_CAP_S


def test_transient_errors_give_up_after_max_attempts(planned_run: Run, monkeypatch: Any):
    _use(monkeypatch, FlakyProvider(transient=99))
    task = Task.objects.filter(run=planned_run).first()
    assert task is not None
    results = [worker.execute(task.pk) for _ in range(task.max_attempts)]
    assert all(r is not None for r in results[:-1]) and results[-1] is None
    task.refresh_from_db()
    assert task.status == Task.Status.FAILED
    assert "gave up after 4 attempts" in task.error


def test_permanent_error_fails_only_its_own_task(planned_run: Run, monkeypatch: Any):
    _use(monkeypatch, FlakyProvider(doomed="mod1.py"))
    for task in Task.objects.filter(run=planned_run):
        assert worker.execute(task.pk) is None
    statuses = {t.scope_label: t.status for t in Task.objects.filter(run=planned_run)}
    assert {s for label, s in statuses.items() if "mod1.py" in label} == {"failed"}
    assert {s for label, s in statuses.items() if "mod1.py" not in label} == {"succeeded"}
    failed = Task.objects.filter(run=planned_run, status="failed").first()
    assert failed is not None
    assert "400 bad request" in failed.error and failed.attempts == 1
    # codebase-audit waits for all: the run goes on to aggregation with what succeeded.
    dispatch(planned_run.pk)
    assert Run.objects.get(pk=planned_run.pk).status == Run.Status.AGGREGATING


class CancelledMidCall(HeuristicProvider):
    """Stands in for an operator pressing cancel while the agent waits for its model."""

    def __init__(self, operator: Any) -> None:
        self.operator = operator

    def run_agent(self, request: Any) -> Any:
        cancel_run(Run.objects.get(pk=request.run_id), self.operator)
        return super().run_agent(request)  # its next step checks for cancellation


def test_cancel_stops_queued_agents_and_running_ones_at_their_next_step(
    planned_run: Run, monkeypatch: Any, operator: Any
):
    first, *others = list(Task.objects.filter(run=planned_run).order_by("id"))
    _use(monkeypatch, CancelledMidCall(operator))
    assert worker.execute(first.pk) is None
    first.refresh_from_db()
    assert first.status == Task.Status.CANCELLED
    assert not first.steps.exists()  # it stopped before paying for its call
    # The queued ones never start: their messages find the run cancelled.
    for task in others:
        assert worker.execute(task.pk) is None
    statuses = set(Task.objects.filter(run=planned_run).values_list("status", flat=True))
    assert statuses == {"cancelled"}
    run = Run.objects.get(pk=planned_run.pk)
    assert run.status == Run.Status.CANCELLED and run.finished_at is not None
    assert not run.findings.exists()
    assert cancel_run(run, operator) is False  # a second cancel changes nothing


def test_a_queued_agent_whose_message_was_lost_is_sent_again(
    planned_run: Run, monkeypatch: Any, settings: Any
):
    from datetime import timedelta

    from django.utils import timezone

    sent: list[list[int]] = []

    def record(name: str, object_id: int, countdown: float | None = None) -> None:
        if name == enqueue.RUN_AGENT:
            sent.append([object_id])

    monkeypatch.setattr(enqueue, "send", record)
    settings.HARNESS_REQUEUE_AFTER_S = 60
    queued = list(Task.objects.filter(run=planned_run, status="queued"))
    assert queued  # dispatched by the fixture, whose publish we dropped: the messages are lost
    dispatch(planned_run.pk)
    assert sent == []  # not yet: a queued agent may simply be waiting for a free worker
    Task.objects.filter(pk=queued[0].pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
        dispatch(planned_run.pk)
    assert sent == [[queued[0].pk]]
    assert Event.objects.filter(run=planned_run, type="task.resent", task=queued[0]).count() == 1


def test_a_running_agent_is_taken_over_only_after_its_lease(
    planned_run: Run, monkeypatch: Any, settings: Any
):
    from datetime import timedelta

    from django.utils import timezone

    _use(monkeypatch, HeuristicProvider())
    settings.HARNESS_AGENT_LEASE_S = 30
    task = Task.objects.filter(run=planned_run).first()
    assert task is not None
    # Held by a live worker process (this one: its liveness key is fresh).
    Task.objects.filter(pk=task.pk).update(
        status="running", heartbeat_at=timezone.now(), holder=liveness.me()
    )
    retry = worker.execute(task.pk)  # a duplicate message while the holder is alive
    assert retry is not None and retry.countdown == 30
    assert Task.objects.get(pk=task.pk).status == "running"
    Task.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    assert worker.execute(task.pk) is None  # the holder went silent: taken over and finished
    assert Task.objects.get(pk=task.pk).status == "succeeded"


def test_a_running_agent_whose_worker_process_died_is_taken_over_at_once(
    planned_run: Run, monkeypatch: Any, settings: Any
) -> None:
    from django.utils import timezone

    _use(monkeypatch, HeuristicProvider())
    settings.HARNESS_AGENT_LEASE_S = 3600  # the lease is far off: only liveness can tell
    # Liveness keys have been written for longer than a TTL (not a freshly restarted Redis).
    get_redis().set(f"{settings.HARNESS_REDIS_PREFIX}alive-since", time.time() - 60)
    task = Task.objects.filter(run=planned_run).first()
    assert task is not None
    Task.objects.filter(pk=task.pk).update(
        status="running", heartbeat_at=timezone.now(), holder="gone-host:4242:deadbeef"
    )
    assert worker.execute(task.pk) is None  # its holder's key is gone: taken over, finished
    task.refresh_from_db()
    assert task.status == "succeeded" and task.holder == liveness.me()
    assert Event.objects.filter(task=task, type="task.started").count() == 1


def test_redis_away_during_a_settle_is_a_retry_that_loses_no_cost_or_finding(
    planned_run: Run, monkeypatch: Any
) -> None:
    import redis

    from agents.budget import Budget
    from runs.models import Finding, Step
    from runs.run_budget import budget_for

    original = Budget.settle
    calls = {"n": 0}

    def flaky_settle(self: Budget, *args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise redis.ConnectionError(
                "Error 111 connecting to 127.0.0.1:6379. Connection refused."
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Budget, "settle", flaky_settle)
    task = Task.objects.filter(run=planned_run).first()
    assert task is not None
    retry = worker.execute(task.pk)
    assert retry is not None  # a retry, not a failure
    task.refresh_from_db()
    assert task.status == Task.Status.RETRYING
    retrying = Event.objects.get(task=task, type="task.retrying")
    assert retrying.payload["error"] == "Redis error: ConnectionError"
    assert worker.execute(task.pk) is None
    task.refresh_from_db()
    assert task.status == Task.Status.SUCCEEDED
    steps = Step.objects.filter(task=task, kind="chat")
    paid = sum(s.cost_usd for s in steps)
    assert paid > 0 and steps.count() == len({s.index for s in steps})  # no call paid twice
    run = Run.objects.get(pk=planned_run.pk)
    assert run.cost_usd == paid
    assert budget_for(run).state().spent_usd == pytest.approx(float(paid), abs=1e-6)
    assert Finding.objects.filter(task=task).exists()


def _with_budget(run: Run, usd: Any) -> Run:
    """The run with another budget, its Redis state rebuilt for it."""
    from harness_site.redis_client import get_redis
    from runs.run_budget import budget_for, rebuild_budget

    Run.objects.filter(pk=run.pk).update(budget_usd=usd)
    run = Run.objects.get(pk=run.pk)
    get_redis().delete(*budget_for(run).keys)
    rebuild_budget(run)
    return run


def test_a_call_that_fits_once_the_calls_in_flight_settle_waits_instead_of_ending_the_run(
    planned_run: Run, monkeypatch: Any
) -> None:
    from decimal import Decimal

    from runs.run_budget import budget_for

    run = _with_budget(planned_run, Decimal("1"))
    budget = budget_for(run)
    assert budget.reserve("someone-else-in-flight", 0.9999, 0)  # an upper bound, in flight
    task = Task.objects.filter(run=run).first()
    assert task is not None
    retry = worker.execute(task.pk)
    assert retry is not None and "calls in flight to settle" in retry.reason
    task.refresh_from_db()
    run.refresh_from_db()
    assert task.status == Task.Status.RETRYING and task.attempts == 0  # not a failed attempt
    assert run.status == Run.Status.RUNNING
    waited = Event.objects.get(task=task, type="task.rate_limited")
    assert "in flight" in waited.payload["reason"]

    budget.settle("someone-else-in-flight", 0.01, 0)  # it cost far less than its bound
    assert worker.execute(task.pk) is None
    task.refresh_from_db()
    assert task.status == Task.Status.SUCCEEDED


def test_the_run_is_exhausted_only_when_the_call_cannot_fit_with_nothing_in_flight(
    planned_run: Run, monkeypatch: Any
) -> None:
    from decimal import Decimal

    run = _with_budget(planned_run, Decimal("0.000001"))
    task = Task.objects.filter(run=run).first()
    assert task is not None
    assert worker.execute(task.pk) is None
    run.refresh_from_db()
    assert run.status == Run.Status.BUDGET_EXHAUSTED
    assert run.status_reason == "budget exhausted ($0.000000 of $0.000001 used, 0%)"


class SlowDownProvider(HeuristicProvider):
    """A provider that only ever answers 429 (slow down)."""

    def run_agent(self, request: Any) -> Any:
        raise ProviderRateLimited("provider 'openai': HTTP 429: slow down", retry_after=0.0)


def test_a_provider_that_only_says_slow_down_fails_the_agent_after_a_bounded_wait(
    planned_run: Run, monkeypatch: Any, settings: Any
) -> None:
    settings.HARNESS_PROVIDER_429_LIMIT = 3
    _use(monkeypatch, SlowDownProvider())
    task = Task.objects.filter(run=planned_run).first()
    assert task is not None
    results = [worker.execute(task.pk) for _ in range(4)]
    task.refresh_from_db()
    # Three waits (each a rate-limited event with the provider's message, no attempt used),
    # then the agent gives up saying why.
    assert [r is not None for r in results] == [True, True, True, False]
    assert task.status == Task.Status.FAILED
    assert "HTTP 429" in task.error and "gave up after 3 rate-limited waits" in task.error
    waits = Event.objects.filter(task=task, type="task.rate_limited")
    assert [e.payload["reason"] for e in waits] == ["provider 'openai': HTTP 429: slow down"] * 3
