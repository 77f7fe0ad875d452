"""Group commit of agents' claims and stored calls: the calls of agents that end together are
stored in one transaction, each agent going on only once its call is committed, with what storing
each alone gives (one step and one ``budget.settled`` event per call, a gap-free log); a batch
holding a duplicate delivery's call fails and each agent then stores its own, the duplicate
keeping the step stored first. Agents that start together are claimed in one transaction, and a
second delivery of an agent in the same batch loses its claim."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from agents.contract import ModelStep, Usage
from runs.actions import group_commit
from runs.actions.claims import Claim, claim_agents
from runs.actions.stored_calls import StoredCall, store_calls
from runs.engine.runtime import AgentRuntime
from runs.models import Event, Run, Step, Task
from runs.run_budget import rebuild_budget
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db(transaction=True)

CALL = ModelStep("heuristic-test", Usage(input_tokens=120, output_tokens=30), {"n": 1}, 0.1)


def _runtimes(count: int) -> tuple[Run, list[AgentRuntime]]:
    run = make_run(status=Run.Status.RUNNING, budget_usd=Decimal("10"))
    tasks = [
        make_task(run, status="running", provider="heuristic", tokens_in=0, tokens_out=0)
        for _ in range(count)
    ]
    rebuild_budget(run)
    return run, [AgentRuntime(task, provider_kind="heuristic", fresh=True) for task in tasks]


def _gate(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[int]]:
    """A committer whose first batch waits until released, as a busy worker's does."""
    monkeypatch.setattr(group_commit, "_calls", group_commit.CallCommitter(max_batch=50))
    release = threading.Event()
    real = store_calls
    sizes: list[int] = []

    def gated(batch: list[StoredCall]) -> None:
        sizes.append(len(batch))
        release.wait(10)
        real(batch)

    monkeypatch.setattr(group_commit, "store_calls", gated)
    return release, sizes


def _call_together(
    runtimes: list[AgentRuntime], release: threading.Event, sizes: list[int]
) -> None:
    def call(runtime: AgentRuntime) -> None:
        runtime.after_call(0, CALL)
        connection.close()

    threads = [threading.Thread(target=call, args=(r,)) for r in runtimes]
    threads[0].start()
    _until(lambda: len(sizes) == 1)  # the committer holds a batch of one
    for thread in threads[1:]:
        thread.start()
    assert group_commit._calls is not None
    waiting = group_commit._calls._waiting
    _until(lambda: waiting.qsize() == len(runtimes) - 1)
    release.set()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive()


def _gap_free(run: Run) -> None:
    run.refresh_from_db()
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1))


def test_calls_that_end_together_are_stored_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    run, runtimes = _runtimes(5)
    release, sizes = _gate(monkeypatch)
    _call_together(runtimes, release, sizes)

    assert sizes == [1, 4]  # the four that waited went in one batch
    steps = Step.objects.filter(task__run=run)
    assert steps.count() == 5
    assert {(s.index, s.tokens_in, s.tokens_out, s.data["n"]) for s in steps} == {(0, 120, 30, 1)}
    settled = Event.objects.filter(run=run, type="budget.settled")
    assert sorted(settled.values_list("task_id", flat=True)) == sorted(r.task.pk for r in runtimes)
    _gap_free(run)
    for runtime in runtimes:  # what each agent's outcome will total
        assert runtime.spent() == (steps.get(task=runtime.task).cost_usd, False)


def test_a_batch_with_a_duplicate_call_fails_and_each_agent_stores_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, runtimes = _runtimes(3)
    # An earlier delivery of the second agent stored its call already: the batch it joins
    # fails, and the agent beside it in that batch still has its call stored.
    first = Step.objects.create(task=runtimes[1].task, index=0, kind="chat", name="earlier")
    release, sizes = _gate(monkeypatch)
    _call_together(runtimes, release, sizes)

    assert sizes == [1, 2]
    assert Step.objects.filter(task__run=run).count() == 3
    assert Step.objects.get(task=runtimes[1].task).pk == first.pk  # kept, not stored twice
    settled = Event.objects.filter(run=run, type="budget.settled")
    assert sorted(settled.values_list("task_id", flat=True)) == sorted(
        [runtimes[0].task.pk, runtimes[2].task.pk]
    )
    _gap_free(run)


def _until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_agents_that_start_together_are_claimed_in_one_batch_and_a_second_delivery_loses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = make_run(status=Run.Status.RUNNING)
    tasks = [make_task(run, status="queued", attempts=0, started_at=None) for _ in range(4)]
    monkeypatch.setattr(group_commit, "_claims", group_commit.ClaimCommitter(max_batch=50))
    release = threading.Event()
    sizes: list[int] = []

    def gated(batch: list[int]) -> list[Claim]:
        sizes.append(len(batch))
        release.wait(10)
        return claim_agents(batch)

    monkeypatch.setattr(group_commit, "claim_agents", gated)
    # The last agent's message delivered twice: both copies start together.
    copies = [*tasks, tasks[-1]]
    results: dict[int, bool] = {}
    fresh: dict[int, bool] = {}

    def start(i: int, task: Task) -> None:
        claim = group_commit.claim(task.pk)
        results[i] = claim.won
        fresh[i] = claim.fresh
        assert claim.task is not None and claim.task.run.pk == run.pk
        connection.close()

    threads = [threading.Thread(target=start, args=(i, t)) for i, t in enumerate(copies)]
    threads[0].start()
    _until(lambda: len(sizes) == 1)
    for thread in threads[1:]:
        thread.start()
    assert group_commit._claims is not None
    waiting = group_commit._claims._waiting
    _until(lambda: waiting.qsize() == len(copies) - 1)
    release.set()
    for thread in threads:
        thread.join(20)

    assert sizes == [1, 4]
    assert [results[i] for i in range(5)] == [True] * 4 + [False]
    assert [fresh[i] for i in range(4)] == [True] * 4
    for task in Task.objects.filter(run=run):
        assert (task.status, task.attempts) == ("running", 1)
        assert task.started_at is not None and task.heartbeat_at is not None
    started = Event.objects.filter(run=run, type="task.started")
    assert sorted(started.values_list("task_id", flat=True)) == sorted(t.pk for t in tasks)
    _gap_free(run)
