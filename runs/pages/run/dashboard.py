"""What the run page shows, computed from one query of a run's tasks.

Pure functions over already-loaded rows: ``load_tasks`` is the only query (light columns, no big
output), everything else (tree, subtree counts, cost tables, budget forecast; the timeline in
``runs/pages/run/timeline.py``) is derived in Python so the page costs the same handful of queries
for 10 agents or 1,000.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from django.db.models.base import ModelState
from django.utils import timezone

from runs.models import Task

if TYPE_CHECKING:
    from runs.models import Run

# Columns the dashboard reads; ``output``/``summary`` can be large and are fetched on demand.
TASK_FIELDS = (
    "id",
    "run_id",
    "allowance_usd",
    "parent_id",
    "depth",
    "step",
    "role",
    "lens",
    "scope_label",
    "group",
    "why",
    "provider",
    "model",
    "critical",
    "status",
    "attempts",
    "max_attempts",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "unpriced",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "model_seconds",
    "tool_seconds",
    "error",
)
TOP_AGENTS = 12
TERMINAL = frozenset(Task.Status.terminal())
DONE = Task.Status.SUCCEEDED


def load_tasks(run: Run) -> list[Task]:
    """All tasks of ``run`` in one query, light columns only, in creation (= tree) order.

    The rows become Task instances without ``Model.__init__`` (its per-field loop and signals
    are half the cost of the page at 10,000 agents): the same objects ``.only()`` would give,
    loaded columns set, the others deferred and fetched if something reads them.
    """
    rows = Task.objects.filter(run_id=run.pk).order_by("id").values_list(*TASK_FIELDS)
    db = rows.db
    tasks: list[Task] = []
    for values in rows:
        task = Task.__new__(Task)
        task.__dict__.update(zip(TASK_FIELDS, values, strict=True))
        state = ModelState()
        state.adding, state.db = False, db
        task._state = state
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------------------------------------
# Costs


@dataclass
class CostRow:
    label: str
    detail: str
    agents: int
    tokens_in: int
    tokens_out: int
    cost: Decimal
    unpriced: bool
    task_id: int | None = None

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


def agent_label(t: Task) -> str:
    parts = [t.role or t.step, t.lens, t.scope_label]
    return " · ".join(p for p in parts if p)


def cost_by_agent(
    tasks: list[Task], limit: int = TOP_AGENTS, *, by: Literal["cost", "tokens"] = "cost"
) -> list[CostRow]:
    """The agents that spent most, by cost (then tokens) or by tokens (then cost)."""
    # The top few, then rows for those only: a label per agent of a 10,000-agent run would cost
    # more than the rest of the panel.
    spent = [t for t in tasks if t.tokens_in or t.tokens_out or t.cost_usd]

    def key(t: Task) -> tuple[Decimal | int, Decimal | int, int]:
        tokens = t.tokens_in + t.tokens_out
        return (t.cost_usd, tokens, -t.id) if by == "cost" else (tokens, t.cost_usd, -t.id)

    top = heapq.nlargest(limit, spent, key=key)
    return [
        CostRow(
            label=agent_label(t),
            detail=t.model or t.provider,
            agents=1,
            tokens_in=t.tokens_in,
            tokens_out=t.tokens_out,
            cost=t.cost_usd,
            unpriced=t.unpriced,
            task_id=t.id,
        )
        for t in top
    ]


def cost_by_model(tasks: list[Task]) -> list[CostRow]:
    grouped: dict[tuple[str, str], CostRow] = {}
    for t in tasks:
        key = (t.provider, t.model or "default")
        row = grouped.get(key)
        if row is None:
            row = grouped[key] = CostRow(key[1], key[0], 0, 0, 0, Decimal(0), False)
        row.agents += 1
        row.tokens_in += t.tokens_in
        row.tokens_out += t.tokens_out
        row.cost += t.cost_usd
        row.unpriced = row.unpriced or t.unpriced
    return sorted(grouped.values(), key=lambda r: (r.cost, r.tokens), reverse=True)


# ---------------------------------------------------------------------------------------------
# Budget and forecast


@dataclass
class BudgetForecast:
    spent: Decimal
    limit: Decimal | None
    tokens: int
    token_limit: int | None
    forecast_cost: Decimal | None
    forecast_finish: datetime | None
    remaining_agents: int
    rate_per_minute: float | None  # finished agents per minute so far

    @property
    def percent(self) -> float:
        if self.limit:
            return min(100.0, float(self.spent / self.limit * 100))
        if self.token_limit:
            return min(100.0, 100.0 * self.tokens / self.token_limit)
        return 0.0

    @property
    def forecast_percent(self) -> float | None:
        if self.forecast_cost is None or not self.limit:
            return None
        return min(100.0, float(self.forecast_cost / self.limit * 100))

    @property
    def over_budget_forecast(self) -> bool:
        return bool(
            self.limit and self.forecast_cost is not None and self.forecast_cost > self.limit
        )


@dataclass(frozen=True)
class Totals:
    """Spend and tokens as the agents report them (each when it finishes): the one source of
    the counters, the budget panel and the cost panel of a render, so they always agree."""

    cost: Decimal
    tokens_in: int
    tokens_out: int
    agents: int  # agents that reported usage
    unpriced_agents: int
    of_agents: int  # every agent of the run

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


def totals(tasks: list[Task]) -> Totals:
    used = [t for t in tasks if t.tokens_in or t.tokens_out or t.cost_usd]
    return Totals(
        cost=sum((t.cost_usd for t in used), Decimal(0)),
        tokens_in=sum(t.tokens_in for t in used),
        tokens_out=sum(t.tokens_out for t in used),
        agents=len(used),
        unpriced_agents=sum(1 for t in used if t.unpriced),
        of_agents=len(tasks),
    )


def forecast_at(
    finished: list[Task], spent: Decimal, remaining: int, started: datetime, at: datetime
) -> tuple[Decimal, datetime, float]:
    """(cost, finish time, agents per second) as forecast at ``at`` from the agents
    ``finished`` by then: their mean cost for each remaining agent, and their throughput since
    ``started`` for the time left. ``finished`` must not be empty."""
    mean = sum((t.cost_usd for t in finished), Decimal(0)) / len(finished)
    elapsed = max(1e-3, (at - started).total_seconds())
    per_second = len(finished) / elapsed
    return spent + mean * remaining, at + timedelta(seconds=remaining / per_second), per_second


def budget(
    run: Run, tasks: list[Task], now: datetime | None = None, spent: Totals | None = None
) -> BudgetForecast:
    """Spend so far (``spent``: ``totals(tasks)`` when the caller has it) and a forecast: the
    mean cost of finished agents times the agents still to run, and a finish time from the
    agent throughput observed since the run started."""
    now = now or timezone.now()
    spent = spent or totals(tasks)
    finished = [t for t in tasks if t.status in TERMINAL and t.started_at]
    remaining = sum(1 for t in tasks if t.status not in TERMINAL)
    forecast_cost: Decimal | None = None
    forecast_finish: datetime | None = None
    rate: float | None = None
    if run.is_finished:
        forecast_cost, forecast_finish = spent.cost, run.finished_at
    elif finished:
        started = run.started_at or min(t.started_at for t in finished if t.started_at)
        forecast_cost, forecast_finish, per_second = forecast_at(
            finished, spent.cost, remaining, started, now
        )
        rate = per_second * 60
    return BudgetForecast(
        spent=spent.cost,
        limit=run.budget_usd,
        tokens=spent.tokens,
        token_limit=run.budget_tokens,
        forecast_cost=forecast_cost,
        forecast_finish=forecast_finish,
        remaining_agents=remaining,
        rate_per_minute=rate,
    )


def status_counts(tasks: list[Task]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for t in tasks:
        counts[t.status] += 1
    return dict(counts)


# A queued agent not taken by a worker after this long is waiting for a free worker slot.
QUEUE_GRACE_S = 3.0


@dataclass(frozen=True)
class Concurrency:
    """Agents of a run in flight against its cap, and why fewer run when they do."""

    running: int
    queued: int
    retrying: int
    cap: int
    reason: str


def concurrency(
    run: Run,
    tasks: list[Task],
    now: datetime,
    *,
    worker_slots: int | None,
    workers: int | None,
    provider_cap: int | None,
    counts: dict[str, int] | None = None,
) -> Concurrency:
    """``worker_slots``/``workers``: what the live workers advertise (None: unknown);
    ``provider_cap``: the run's provider's limit on calls at once across all runs (None: none);
    ``counts``: ``status_counts(tasks)`` when the caller has it already."""
    counts = counts if counts is not None else status_counts(tasks)
    running = counts.get(Task.Status.RUNNING, 0)
    queued = counts.get(Task.Status.QUEUED, 0)
    retrying = counts.get(Task.Status.RETRYING, 0)
    cap = run.max_concurrency
    reason = ""
    if run.status == run.Status.RUNNING and running < cap:
        waiting = [
            t
            for t in tasks
            if t.status == Task.Status.QUEUED
            and t.queued_at
            and (now - t.queued_at).total_seconds() > QUEUE_GRACE_S
        ]
        approval = counts.get(Task.Status.AWAITING_APPROVAL, 0)
        ready = counts.get(Task.Status.PENDING, 0) + queued
        if workers == 0:
            reason = "No worker is running: queued agents start when one does."
        elif provider_cap and provider_cap < cap and ready:
            reason = (
                f"The {run.provider} provider allows {provider_cap} calls at once, across all runs."
            )
        elif waiting:
            shared = f"the workers run {worker_slots} agents at once in all" if worker_slots else ""
            reason = f"{len(waiting)} queued agents wait for a free worker" + (
                f": {shared}, shared by every run." if shared else "."
            )
        elif retrying:
            reason = f"{retrying} waiting to retry after a rate limit or a transient error."
        elif approval:
            reason = f"{approval} waiting for approval."
        elif worker_slots is not None and worker_slots < cap and ready:
            reason = f"The workers run {worker_slots} agents at once in all, below this cap."
        elif not ready:
            reason = "No more agents are ready to start."
    return Concurrency(running=running, queued=queued, retrying=retrying, cap=cap, reason=reason)
