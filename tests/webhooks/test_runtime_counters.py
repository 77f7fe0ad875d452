"""The agents' side of /metrics: a paid model call and a refused budget reservation are counted
where they happen (the worker's runtime), once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.contract import BudgetExhausted, ModelStep, Usage
from runs.engine.runtime import AgentRuntime
from runs.models import Run
from runs.observability.counters import counters, read_counters
from runs.run_budget import rebuild_budget
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db


def total(name: str, **labels: str) -> float:
    return sum(
        value
        for (counted, pairs), value in read_counters().items()
        if counted == name and labels.items() <= dict(pairs).items()
    )


def test_a_paid_call_and_a_refused_reservation_are_counted() -> None:
    run = make_run(status=Run.Status.RUNNING, budget_usd=Decimal("0.000001"))
    task = make_task(run, status="running", provider="heuristic", tokens_in=0, tokens_out=0)
    rebuild_budget(run)
    runtime = AgentRuntime(task, provider_kind="heuristic", fresh=True)
    counters.flush()
    calls = total("model_calls", provider="heuristic", model="heuristic-test")
    tokens_in = total("model_tokens", provider="heuristic", direction="input")
    refused = total("budget_reservations_refused", provider="heuristic", outcome="exhausted")

    paid = ModelStep("heuristic-test", Usage(input_tokens=120, output_tokens=30), {}, 0.1)
    runtime.after_call(0, paid)
    # The same step again (a redelivered agent): stored once, counted once.
    runtime.after_call(0, paid)
    with pytest.raises(BudgetExhausted):
        runtime.before_call(1, model="heuristic-test", input_tokens=200_000, output_tokens=4096)
    counters.flush()

    assert total("model_calls", provider="heuristic", model="heuristic-test") == calls + 1
    assert total("model_tokens", provider="heuristic", direction="input") == tokens_in + 120
    assert (
        total("budget_reservations_refused", provider="heuristic", outcome="exhausted")
        == refused + 1
    )


def test_a_granted_reservation_is_counted_in_usd() -> None:
    run = make_run(status=Run.Status.RUNNING, budget_usd=Decimal("5"))
    task = make_task(run, status="running", provider="heuristic", tokens_in=0, tokens_out=0)
    rebuild_budget(run)
    runtime = AgentRuntime(task, provider_kind="heuristic", fresh=True)
    counters.flush()
    before = total("budget_reserved_usd", provider="heuristic")
    runtime.before_call(0, model="heuristic-test", input_tokens=1000, output_tokens=500)
    counters.flush()
    reserved = total("budget_reserved_usd", provider="heuristic") - before
    granted = runtime.budget.state().reserved_usd
    assert reserved == pytest.approx(granted) and reserved > 0
