"""An agent that succeeds hands its slot straight to the run's next ready task, in the same
transaction as its outcome; a dispatch is asked for only when there is nothing to hand over."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from agents.contract import AgentOutput, AgentResult, Usage
from agents.playbooks import get_playbook
from runs.actions import claims, completion, enqueue, launch_run, outcomes
from runs.actions.dispatch import dispatch, has_dependencies
from runs.actions.planning import plan_run
from runs.models import Event, Run, Task
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every message the actions publish (no broker needed)."""
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


@pytest.fixture
def run(
    tmp_path: Path,
    settings: Any,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
) -> Run:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = make_target(tmp_path.resolve(), 1)
    with django_capture_on_commit_callbacks(execute=True):
        created = launch_run(
            user=None,
            playbook="ensemble",
            target_path=str(target),
            max_concurrency=2,
            options={"k": 4},
        )
        plan_run(created.pk)
        dispatch(created.pk)
    sent.clear()
    return Run.objects.get(pk=created.pk)


def _succeed(task: Task, capture: Any) -> None:
    result = AgentResult(output=AgentOutput(), usage=Usage(), model="m", provider="heuristic")
    with capture(execute=True):
        assert claims.claim_task(task)
        assert completion.complete_task(task, result, get_playbook("ensemble"))


def _statuses(run: Run) -> list[str]:
    return list(Task.objects.filter(run=run).order_by("id").values_list("status", flat=True))


def test_a_finished_agent_queues_the_next_ready_task_itself(
    run: Run, sent: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    first, _, third, _ = Task.objects.filter(run=run).order_by("id")
    assert _statuses(run) == ["queued", "queued", "pending", "pending"]

    _succeed(first, django_capture_on_commit_callbacks)

    assert _statuses(run) == ["succeeded", "queued", "queued", "pending"]
    # The next agent's message went out on the same commit; no dispatch round trip was needed.
    assert sent == [(enqueue.RUN_AGENT, third.pk)]
    queued = Event.objects.filter(run=run, type="task.queued", task=third)
    succeeded = Event.objects.get(run=run, type="task.succeeded", task=first)
    assert queued.count() == 1 and queued.get().seq == succeeded.seq + 1
    run.refresh_from_db()
    assert run.tasks_done == 1


def test_with_nothing_left_to_hand_over_a_dispatch_is_asked_for(
    run: Run, sent: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    tasks = list(Task.objects.filter(run=run).order_by("id"))
    Task.objects.filter(pk__in=[tasks[2].pk, tasks[3].pk]).update(status="cancelled")

    _succeed(tasks[0], django_capture_on_commit_callbacks)

    assert sent == [(enqueue.DISPATCH_RUN, run.pk)]


def test_a_task_at_an_approval_gate_is_left_to_dispatch(
    run: Run, sent: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    tasks = list(Task.objects.filter(run=run).order_by("id"))
    Task.objects.filter(pk=tasks[2].pk).update(needs_approval=True)

    _succeed(tasks[0], django_capture_on_commit_callbacks)

    # Dispatch opens the gate (an Approval row and its event); the completion does not.
    assert Task.objects.get(pk=tasks[2].pk).status == "pending"
    assert sent == [(enqueue.DISPATCH_RUN, run.pk)]


def test_no_hand_over_once_the_run_is_cancelled(
    run: Run, sent: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    first = Task.objects.filter(run=run).order_by("id").first()
    assert first is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.claim_task(first)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.CANCELLED)
    result = AgentResult(output=AgentOutput(), usage=Usage(), model="m", provider="heuristic")
    with django_capture_on_commit_callbacks(execute=True):
        completion.complete_task(first, result, get_playbook("ensemble"))

    assert _statuses(run)[2:] == ["pending", "pending"]
    assert sent == [(enqueue.DISPATCH_RUN, run.pk)]


def test_a_retry_whose_message_was_lost_is_sent_again(
    run: Run, sent: list[tuple[str, int]], django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    first = Task.objects.filter(run=run).order_by("id").first()
    assert first is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.claim_task(first)
        outcomes.retry_task(first, delay=5, error="database error: OperationalError")
    assert Event.objects.filter(task=first, type="task.retrying").count() == 1
    # Its delayed message never arrives; once the lease is over, dispatch sends it again.
    long_ago = timezone.now() - timedelta(seconds=settings.HARNESS_AGENT_LEASE_S + 60)
    Task.objects.filter(pk=first.pk).update(heartbeat_at=long_ago, queued_at=long_ago)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        dispatch(run.pk)
    assert (enqueue.RUN_AGENT, first.pk) in sent
    resent = Event.objects.get(task=first, type="task.resent")
    assert resent.payload == {"was": "retrying"}


def test_the_dependency_cache_is_per_run_not_per_id(run: Run) -> None:
    first, second = list(Task.objects.filter(run=run).order_by("id"))[:2]
    assert not has_dependencies(run)
    second.depends_on.add(first)
    # Edges exist only from planning on, so the answer is kept ...
    assert not has_dependencies(run)
    # ... but only for this run: a database reset under a live worker reuses ids, not UUIDs.
    reused_id = Run.objects.get(pk=run.pk)
    reused_id.uid = uuid.uuid4()
    assert has_dependencies(reused_id)
