"""A run's budget is used up before the run is declared exhausted, never overspent, and the
reason the run ends with states what it finally spent: real Celery worker processes, real
Redis, the test database, the offline analyzer on the sample application (its agents cost from
$0.0002 to $0.003: the end of a budget is where a fixed upper-bound reservation wasted most)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum

from runs.actions import launch_run
from runs.models import Event, Run, Step, Task
from runs.pages.summary import run_summary
from runs.run_budget import budget_for
from tests.engine.helpers import wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _launch(settings: Any, budget: Decimal | str) -> Run:
    return launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(settings.BASE_DIR / "samples" / "vulnerable_app"),
        max_concurrency=8,
        latency_ms=40,
        options={"chunk_files": 1},
        budget_usd=budget,
    )


def test_a_budget_worth_thirty_agents_is_used_to_at_least_90_percent(
    celery_worker: Any, settings: Any
) -> None:
    celery_worker(concurrency=8, name="budget-use", pool="threads")
    probe = wait_for_run(_launch(settings, "100").pk)
    assert probe.status == Run.Status.AWAITING_REVIEW
    agents = probe.tasks_total
    # Worth 60 % of the agents (about 30 of the sample's 48): the run must stop part way.
    budget = (probe.cost_usd * Decimal("0.6")).quantize(Decimal("0.000001"))
    assert budget / (probe.cost_usd / agents) >= 20

    run = wait_for_run(_launch(settings, budget).pk)
    assert run.status == Run.Status.BUDGET_EXHAUSTED
    assert run.cost_usd <= budget  # never over
    assert run.cost_usd >= budget * Decimal("0.9"), f"{run.cost_usd} of {budget} used"
    # Every call paid once: the steps, the run's total and the budget's ledger agree.
    steps = Step.objects.filter(task__run=run).aggregate(c=Sum("cost_usd"))["c"]
    assert steps == run.cost_usd
    state = budget_for(run).state()
    assert state.spent_usd == pytest.approx(float(run.cost_usd), abs=1e-9)
    assert state.reserved_usd == 0 and state.reserved_tokens == 0
    assert not Task.objects.filter(run=run, status="failed").exists()
    assert Event.objects.filter(run=run, type="budget.exhausted").count() == 1

    # The reason states the final spend, as launch_run --json prints it.
    reason = run_summary(run)["reason"]
    found = re.fullmatch(r"budget exhausted \(\$(\S+) of \$(\S+) used, (\d+)%\)", reason)
    assert found, reason
    assert Decimal(found[1]) == run.cost_usd.quantize(Decimal("0.0001"))
    assert Decimal(found[2]) == budget.quantize(Decimal("0.0001"))
    assert int(found[3]) == round(100 * run.cost_usd / budget)
