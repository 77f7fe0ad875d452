"""Group commit: many agents' successes stored in one transaction give exactly what storing
each on its own gives (statuses, counters, totals, findings, a gap-free log, the freed slots
handed over), a duplicate delivery inside a batch still loses, and the committer thread of a
worker process batches agents that finish together and falls back to one by one when a batch
fails."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.contract import AgentFinding, AgentOutput, AgentResult, Usage
from agents.playbooks import get_playbook
from runs.actions import claims, completion, enqueue, group_commit, launch_run
from runs.actions.completion import Completion, complete_tasks
from runs.actions.dispatch import dispatch
from runs.actions.planning import plan_run
from runs.models import Event, Finding, Run, Step, Task
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db

BOOK = get_playbook("ensemble")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    messages: list[tuple[str, int]] = []
    monkeypatch.setattr(
        enqueue, "send", lambda name, object_id, countdown=None: messages.append((name, object_id))
    )
    monkeypatch.setattr(
        enqueue, "request_dispatch", lambda run_id: messages.append((enqueue.DISPATCH_RUN, run_id))
    )
    monkeypatch.setattr(enqueue, "dispatch_starting", lambda run_id: None)
    monkeypatch.setattr(enqueue, "arm_watchdog", lambda run_id: None)
    return messages


def _run(tmp_path: Path, settings: Any, capture: Any, k: int, concurrency: int) -> Run:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = make_target(tmp_path.resolve(), 1)
    with capture(execute=True):
        created = launch_run(
            user=None,
            playbook="ensemble",
            target_path=str(target),
            max_concurrency=concurrency,
            options={"k": k},
        )
        plan_run(created.pk)
        dispatch(created.pk)
    return Run.objects.get(pk=created.pk)


def _result(i: int) -> AgentResult:
    finding = AgentFinding(
        rule="sec.eval",
        title=f"Dynamic code execution {i}",
        detail="eval of request data",
        severity="high",
        confidence=0.9,
        path="app.py",
        line_start=5,
    )
    return AgentResult(
        output=AgentOutput(summary=f"agent {i}", findings=[finding]),
        usage=Usage(),
        model="m",
        provider="heuristic",
    )


def _claimed_with_a_stored_call(run: Run, capture: Any) -> list[Task]:
    tasks = list(Task.objects.filter(run=run, status="queued").order_by("id"))
    for task in tasks:
        with capture(execute=True):
            assert claims.claim_task(task)
        Step.objects.create(
            task=task,
            index=0,
            kind="chat",
            name="chat m",
            tokens_in=100,
            tokens_out=10,
            cost_usd=Decimal("0.000250"),
        )
    return tasks


def test_a_batch_stores_what_one_by_one_would_and_hands_over_every_freed_slot(
    tmp_path: Path,
    settings: Any,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = _run(tmp_path, settings, django_capture_on_commit_callbacks, k=8, concurrency=4)
    batch = _claimed_with_a_stored_call(run, django_capture_on_commit_callbacks)
    assert len(batch) == 4
    sent.clear()
    items = [Completion(t, _result(i), BOOK) for i, t in enumerate(batch)]
    with (
        CaptureQueriesContext(connection) as one_batch,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert complete_tasks(items) == [True] * 4

    statuses = list(Task.objects.filter(run=run).order_by("id").values_list("status", flat=True))
    assert statuses == ["succeeded"] * 4 + ["queued"] * 4  # every freed slot handed over
    run.refresh_from_db()
    assert (run.tasks_done, run.tasks_failed, run.tasks_skipped) == (4, 0, 0)
    assert (run.tokens_in, run.tokens_out, run.findings_count) == (400, 40, 4)
    assert run.cost_usd == Decimal("0.001000")
    assert Finding.objects.filter(run=run).count() == 4
    for task in Task.objects.filter(pk__in=[t.pk for t in batch]):
        assert (task.tokens_in, task.cost_usd) == (100, Decimal("0.000250"))
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1))
    assert Event.objects.filter(run=run, type="task.succeeded").count() == 4
    # The next four agents' messages leave on the batch's commit; no dispatch is needed.
    queued = [t.pk for t in Task.objects.filter(run=run, status="queued")]
    assert sorted(sent) == sorted((enqueue.RUN_AGENT, pk) for pk in queued)
    # One transaction whatever the batch's size: the per-agent statements are its UPDATE and
    # the hand-over's, the rest is shared (lock, aggregate, counters, inserts, seqs).
    assert len(one_batch.captured_queries) <= 2 * 4 + 12


def test_a_duplicate_delivery_inside_a_batch_loses_and_stores_nothing_twice(
    tmp_path: Path,
    settings: Any,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = _run(tmp_path, settings, django_capture_on_commit_callbacks, k=2, concurrency=2)
    first, second = _claimed_with_a_stored_call(run, django_capture_on_commit_callbacks)
    items = [
        Completion(first, _result(1), BOOK),
        Completion(Task.objects.get(pk=first.pk), _result(1), BOOK),  # redelivered copy
        Completion(second, _result(2), BOOK),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert complete_tasks(items) == [True, False, True]
    run.refresh_from_db()
    assert run.tasks_done == 2 and run.findings_count == 2 and run.tokens_in == 200
    assert Finding.objects.filter(run=run).count() == 2
    assert Event.objects.filter(run=run, type="task.succeeded").count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_committer_batches_agents_that_finish_together_and_falls_back_when_a_batch_fails(
    tmp_path: Path, settings: Any, sent: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    run = launch_run(
        user=None,
        playbook="ensemble",
        target_path=str(make_target(tmp_path.resolve(), 1)),
        max_concurrency=6,
        options={"k": 6},
    )
    plan_run(run.pk)
    dispatch(run.pk)
    tasks = list(Task.objects.filter(run=run, status="queued").order_by("id"))
    for task in tasks:
        assert claims.claim_task(task)
    committer = group_commit.GroupCommitter(max_batch=50)
    # Hold the committer's first batch until every agent is waiting, as a busy worker does.
    release = threading.Event()
    real = completion.complete_tasks
    sizes: list[int] = []

    def gated(batch: list[Completion]) -> list[bool]:
        sizes.append(len(batch))
        release.wait(10)
        if len(sizes) == 2:
            raise RuntimeError("a batch that fails: each agent stores its own")
        return real(batch)

    monkeypatch.setattr(group_commit, "complete_tasks", gated)
    results: list[bool] = []

    def finish(task: Task, i: int) -> None:
        results.append(committer.complete(Completion(task, _result(i), BOOK)))
        connection.close()

    threads = [threading.Thread(target=finish, args=(t, i)) for i, t in enumerate(tasks)]
    threads[0].start()
    _until(lambda: len(sizes) == 1)  # the committer holds a batch of one
    for thread in threads[1:]:
        thread.start()
    _until(lambda: committer._waiting.qsize() == 5)  # five agents finished meanwhile
    release.set()
    for thread in threads:
        thread.join(20)
    assert sorted(results) == [True] * 6
    assert sizes[:2] == [1, 5]  # the five that waited went in one batch (it failed)
    assert Task.objects.filter(run=run, status="succeeded").count() == 6
    run.refresh_from_db()
    assert run.tasks_done == 6 and run.findings_count == 6
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1))


def _until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
