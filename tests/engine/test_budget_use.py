"""A run's budget is used up before the run is declared exhausted, never overspent, and the
reason the run ends with states what it finally spent: real Celery worker processes, real
Redis, the test database, the offline analyzer on the sample application (its agents cost from
$0.0002 to $0.003: the end of a budget is where a fixed upper-bound reservation wasted most)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Sum

from agents.contract import ModelStep, Usage
from harness_site.redis_client import get_redis
from runs.actions import enqueue, launch_run
from runs.actions.claims import claim_task
from runs.actions.dispatch import dispatch
from runs.actions.outcomes import retry_task
from runs.actions.planning import plan_run
from runs.actions.report import aggregate
from runs.engine import worker
from runs.engine.runtime import AgentRuntime
from runs.models import Event, Run, Step, Task
from runs.pages.summary import run_summary
from runs.run_budget import budget_for, rebuild_budget
from tests.engine.helpers import make_target, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)


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


@pytest.mark.integration
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


def test_the_reason_says_so_far_while_an_agent_finishes_then_states_the_final_spend(
    tmp_path: Path, settings: Any, monkeypatch: Any
) -> None:
    """An agent still in flight when the budget runs out pays for its call when it ends: the
    reason written then says "so far", and the run ends with the final figure."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn()
    )
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 2)),
        max_concurrency=8,
        budget_usd="1",
        aggregation=["dedup"],
        options={"chunk_files": 1},
    )
    plan_run(run.pk)
    dispatch(run.pk)
    first, in_flight, refused, *rest = Task.objects.filter(run=run).order_by("pk")
    assert worker.execute(first.pk) is None
    # Another agent has made its call (stored, paid for in Redis) and is still working.
    assert claim_task(in_flight)
    call = ModelStep("heuristic-v1", Usage(input_tokens=400, output_tokens=100), {}, 0.1)
    AgentRuntime(in_flight, provider_kind="heuristic", fresh=True).after_call(0, call)
    paid_first = Run.objects.get(pk=run.pk).cost_usd
    in_flight_cost = Step.objects.get(task=in_flight).cost_usd
    # A budget of exactly what was paid: the next agent cannot fit even its likely size.
    budget = paid_first + in_flight_cost
    Run.objects.filter(pk=run.pk).update(budget_usd=budget)
    run = Run.objects.get(pk=run.pk)
    get_redis().delete(*budget_for(run).keys)
    rebuild_budget(run)

    assert worker.execute(refused.pk) is None
    run.refresh_from_db()
    assert run.status == Run.Status.BUDGET_EXHAUSTED
    share = round(100 * paid_first / budget)
    assert run.status_reason == (
        f"budget exhausted (${paid_first:.6f} of ${budget:.6f} used so far, {share}%; "
        "1 agent finishing)"
    )

    # The agent in flight ends (skipped for the budget: its stored call is still paid).
    retry_task(in_flight, delay=0)
    for task in [in_flight, *rest]:
        assert worker.execute(task.pk) is None
    dispatch(run.pk)
    aggregate(run.pk)
    run.refresh_from_db()
    assert run.finished_at is not None and run.cost_usd == budget
    assert run.status_reason == f"budget exhausted (${budget:.6f} of ${budget:.6f} used, 100%)"
    assert run_summary(run)["reason"] == run.status_reason
