"""Under "hold agents" no agent starts without a reviewer's approval, whatever path started it:
planned, spawned by an approved parent, retried after a failure, re-run behind a dismissed
finding, or created for the report. The engine runs in this process (no Celery), so each step
can be checked between moves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import transaction

from agents.playbooks import PLAYBOOKS
from runs.actions import decide_approval, enqueue, launch_run, retry_failed
from runs.actions.dispatch import dispatch
from runs.actions.planning import plan_run
from runs.actions.report import aggregate
from runs.actions.report_steps import start_next_report_step
from runs.actions.rerun import dismiss_and_rerun
from runs.engine import worker
from runs.models import Approval, Event, Finding, Run, Task
from runs.roles import ensure_roles
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = Path(django_settings.BASE_DIR) / "samples" / "vulnerable_app"


@pytest.fixture
def in_process(monkeypatch: Any) -> None:
    """Celery messages are not sent; after-commit work runs at once, as in one process."""
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn()
    )


@pytest.fixture
def second_reviewer(make_user: Callable[..., User]) -> User:
    """A reviewer who is also an operator (retry and re-run need both) but not the launcher."""
    user = make_user("reviewer", username="second-reviewer")
    user.groups.add(ensure_roles()["operator"])
    return user


def _run_ready_agents(run: Run) -> int:
    """Dispatch and execute every agent that may start, as workers would; approves nothing."""
    ran = 0
    for _ in range(100):
        dispatch(run.pk)
        queued = list(Task.objects.filter(run=run, status__in=["queued", "retrying"]))
        if not queued:
            break
        for task in queued:
            worker.execute(task.pk)
            ran += 1
    return ran


def _approve_waiting(run: Run, reviewer: User) -> int:
    waiting = list(Approval.objects.filter(run=run, gate="task", decision="pending"))
    for approval in waiting:
        decide_approval(approval, reviewer, "approved")
    return len(waiting)


def assert_no_agent_started_unapproved(run: Run) -> None:
    """Every try of every agent that started was approved: one approved task gate per try (the
    first try, and one more per retry or re-run requested)."""
    for task in Task.objects.filter(run=run, started_at__isnull=False):
        tries = 1 + Event.objects.filter(run=run, task=task, type="task.retry_requested").count()
        approved = Approval.objects.filter(
            run=run, gate="task", target_id=task.pk, decision="approved"
        ).count()
        assert approved >= tries, f"{task} started {tries} time(s) with {approved} approval(s)"


def _launch_held(operator: User, settings: Any) -> Run:
    settings.HARNESS_TARGET_ROOTS = [SAMPLE.parent.resolve()]
    run = launch_run(
        user=operator,
        playbook="codebase-audit",
        target_path=str(SAMPLE),
        max_concurrency=4,
        budget_usd="5",
        hold_agents=True,
    )
    plan_run(run.pk)
    return run


def test_spawned_agents_of_an_approved_parent_wait_for_their_own_approval(
    in_process: None, settings: Any, operator: User, second_reviewer: User
) -> None:
    run = _launch_held(operator, settings)
    assert _run_ready_agents(run) == 0  # every planned agent waits
    planned = Task.objects.filter(run=run).count()
    assert _approve_waiting(run, second_reviewer) == planned

    _run_ready_agents(run)
    spawned = Task.objects.filter(run=run, depth__gt=0)
    assert spawned.exists(), "the sample should make the analyzer split a large file"
    assert set(spawned.values_list("status", flat=True)) == {Task.Status.AWAITING_APPROVAL}
    assert_no_agent_started_unapproved(run)

    while _approve_waiting(run, second_reviewer):
        _run_ready_agents(run)
    aggregate(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    # One request per agent, none walked around.
    total = Task.objects.filter(run=run).count()
    assert Approval.objects.filter(run=run, gate="task").count() == total
    assert_no_agent_started_unapproved(run)


def test_retried_and_rerun_agents_wait_again_under_a_hold(
    in_process: None, settings: Any, operator: User, second_reviewer: User
) -> None:
    run = _launch_held(operator, settings)
    _run_ready_agents(run)
    while _approve_waiting(run, second_reviewer):
        _run_ready_agents(run)
    aggregate(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW

    # Re-run behind a dismissed finding: the agent waits at its gate before it runs again.
    finding = Finding.objects.filter(run=run).order_by("id").first()
    assert finding is not None
    behind = finding.task
    dismiss_and_rerun(finding, second_reviewer, "not a real issue")
    _run_ready_agents(run)
    behind.refresh_from_db()
    assert behind.status == Task.Status.AWAITING_APPROVAL
    assert_no_agent_started_unapproved(run)
    while _approve_waiting(run, second_reviewer):
        _run_ready_agents(run)
    behind.refresh_from_db()
    assert behind.status == Task.Status.SUCCEEDED
    assert_no_agent_started_unapproved(run)


def test_an_operator_retry_of_a_failed_agent_waits_for_approval_under_a_hold(
    in_process: None, operator: User
) -> None:
    held = PLAYBOOKS["codebase-audit"].with_overrides(hold_agents=True)
    run = make_run(operator, config=held.to_config())
    failed = make_task(run, status=Task.Status.FAILED, needs_approval=False, error="boom")
    Run.objects.filter(pk=run.pk).update(tasks_total=1, tasks_failed=1)

    assert retry_failed(run, operator) == 1
    dispatch(run.pk)  # what the retry's message asks for
    failed.refresh_from_db()
    assert failed.needs_approval and failed.status == Task.Status.AWAITING_APPROVAL
    assert Approval.objects.filter(run=run, gate="task", target_id=failed.pk).count() == 1


def test_an_operator_retry_without_a_hold_starts_at_once(in_process: None, operator: User) -> None:
    run = make_run(operator, config=PLAYBOOKS["codebase-audit"].to_config())
    failed = make_task(run, status=Task.Status.FAILED, error="boom")
    Run.objects.filter(pk=run.pk).update(tasks_total=1, tasks_failed=1)
    assert retry_failed(run, operator) == 1
    dispatch(run.pk)  # what the retry's message asks for
    failed.refresh_from_db()
    assert not failed.needs_approval and failed.status == Task.Status.QUEUED


def test_report_agents_of_a_held_run_wait_for_approval(in_process: None, operator: User) -> None:
    held = PLAYBOOKS["codebase-audit"].with_overrides(
        hold_agents=True, provider="openai", model="gpt-4o-mini"
    )
    run = make_run(operator, config=held.to_config(), provider="openai", model="gpt-4o-mini")
    make_task(run)  # one worker agent, done
    Run.objects.filter(pk=run.pk).update(tasks_total=1, tasks_done=1)
    with transaction.atomic():  # as dispatch calls it, under the run's lock
        run = Run.objects.select_for_update().get(pk=run.pk)
        assert start_next_report_step(run)
    report_agent = Task.objects.get(run=run, step="report")
    assert report_agent.needs_approval
    dispatch(run.pk)
    report_agent.refresh_from_db()
    assert report_agent.status == Task.Status.AWAITING_APPROVAL
