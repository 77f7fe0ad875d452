"""The calls an agent paid for count in the run's totals however the agent ends: a failed,
skipped or cancelled agent's stored calls were settled in the budget, so the run's cost must
include them (the fault suite found failed agents' calls missing: settled cost != step costs),
and an operator's retry takes them out again before the new try counts all its calls."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from agents.playbooks import get_playbook
from runs.actions.control import retry_failed
from runs.actions.outcomes import cancel_task, fail_task
from runs.models import Run, Step, Task
from runs.models.task import TRY_SPAN
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db
CONFIG = get_playbook("codebase-audit").to_config()


def running_task_with_calls(run: Run) -> Task:
    task = make_task(
        run, status=Task.Status.RUNNING, cost_usd=Decimal(0), tokens_in=0, tokens_out=0
    )
    for index, (cost, unpriced) in enumerate([(Decimal("0.0012"), False), (Decimal(0), True)]):
        Step.objects.create(
            task=task,
            index=index,
            kind="chat",
            name="gpt-4o-mini",
            tokens_in=100,
            tokens_out=20,
            cost_usd=cost,
            unpriced=unpriced,
        )
    Run.objects.filter(pk=run.pk).update(tasks_total=1)
    return Task.objects.get(pk=task.pk)


@pytest.mark.parametrize("end", [fail_task, cancel_task])
def test_an_agent_that_does_not_succeed_still_counts_its_paid_calls(
    end: Callable[[Task, str], object],
) -> None:
    run = make_run(config=CONFIG, cost_usd=Decimal(0), tokens_in=0, tokens_out=0)
    task = running_task_with_calls(run)
    end(task, "provider 'openai': HTTP 503 (gave up after 4 attempts)")
    run.refresh_from_db()
    task.refresh_from_db()
    assert task.status in (Task.Status.FAILED, Task.Status.CANCELLED)
    assert run.cost_usd == task.cost_usd == Decimal("0.0012")
    assert (run.tokens_in, run.tokens_out, run.unpriced_calls) == (200, 40, 1)
    assert task.unpriced


def test_an_operator_retry_keeps_the_failed_try_paid_and_out_of_the_new_trys_way(
    operator: User,
) -> None:
    run = make_run(operator, config=CONFIG, cost_usd=Decimal(0), tokens_in=0, tokens_out=0)
    task = running_task_with_calls(run)
    fail_task(task, "boom")
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    assert retry_failed(Run.objects.get(pk=run.pk), operator) == 1
    run.refresh_from_db()
    task.refresh_from_db()
    assert task.status == Task.Status.PENDING
    # The failed try was paid: it stays in the run's totals (counted once, when it ended), and
    # its steps stay, moved past the indexes the new try will use (it calls the model again).
    assert (run.cost_usd, run.tokens_in, run.tokens_out, run.unpriced_calls) == (
        Decimal("0.0012"),
        200,
        40,
        1,
    )
    assert sorted(Step.objects.filter(task=task).values_list("index", flat=True)) == [
        TRY_SPAN,
        TRY_SPAN + 1,
    ]
