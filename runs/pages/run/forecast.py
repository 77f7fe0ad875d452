"""How good the budget panel's forecast was: what it said when 25, 50 and 75% of the agents
were done, replayed from the tasks' own finish times, against how the run turned out (or, while
it runs, against what the forecast says now).

Pure functions over the tasks ``dashboard.load_tasks`` loaded; the forecast itself is
``dashboard.forecast_at``, the same one the budget panel shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from runs.models import Run, Task
from runs.pages.run.dashboard import TERMINAL, BudgetForecast, forecast_at

MILESTONES = (25, 50, 75)


@dataclass(frozen=True)
class ForecastCheck:
    """The forecast made when ``percent`` of the agents were done, against ``finish``/``cost``:
    the outcome when ``final``, else the current forecast."""

    percent: int
    at: datetime
    said_finish: datetime
    said_cost: Decimal
    finish: datetime
    cost: Decimal
    final: bool
    duration_s: float  # from the run's start to ``finish``: the scale of the time error

    @property
    def late_s(self) -> float:
        """Seconds the outcome came after the forecast (negative: before)."""
        return (self.finish - self.said_finish).total_seconds()

    @property
    def late_text(self) -> str:
        late = round(self.late_s)
        if late == 0:
            return "on time"
        return f"{abs(late)} s {'late' if late > 0 else 'early'}"

    @property
    def late_percent(self) -> float:
        return 100 * abs(self.late_s) / self.duration_s if self.duration_s else 0.0

    @property
    def cost_error_percent(self) -> float | None:
        """How far the forecast cost was from ``cost``, as a share of ``cost``."""
        if not self.cost:
            return None
        return float(100 * (self.said_cost - self.cost) / self.cost)

    @property
    def cost_error_text(self) -> str:
        error = self.cost_error_percent
        return "" if error is None else f"{error:+.0f}%"

    @property
    def explain(self) -> str:
        """The row's tooltip: how the check was made (too long for a template line)."""
        at = timezone.localtime(self.at).strftime("%H:%M:%S")
        against = "the last agent's finish" if self.final else "the current forecast"
        return (
            "Replayed from the agents' finish times: the forecast as it stood when "
            f"{self.percent}% of the agents were done ({at}). The time error is a share of "
            f"the run's duration to {against}."
        )


def forecast_checks(run: Run, tasks: list[Task], current: BudgetForecast) -> list[ForecastCheck]:
    """One check per milestone reached. A finished run is compared with the last agent's finish
    and the agents' total cost; a live one with ``current`` (nothing before it has one)."""
    done = sorted(
        (t for t in tasks if t.status in TERMINAL and t.finished_at),
        key=lambda t: (t.finished_at, t.id),
    )
    started = run.started_at or min((t.started_at for t in tasks if t.started_at), default=None)
    if not done or started is None:
        return []
    if run.is_finished:
        finish = max(t.finished_at for t in done if t.finished_at)
        cost = sum((t.cost_usd for t in tasks), Decimal(0))
    elif current.forecast_finish is not None and current.forecast_cost is not None:
        finish, cost = current.forecast_finish, current.forecast_cost
    else:
        return []
    checks = []
    for percent in MILESTONES:
        k = math.ceil(len(tasks) * percent / 100)
        if k < 1 or k > len(done) or k >= len(tasks):
            continue
        at = done[k - 1].finished_at
        assert at is not None  # filtered above
        said = _forecast_then(tasks, started, at)
        if said is None:
            continue
        checks.append(
            ForecastCheck(
                percent=percent,
                at=at,
                said_finish=said[1],
                said_cost=said[0],
                finish=finish,
                cost=cost,
                final=run.is_finished,
                duration_s=max(0.0, (finish - started).total_seconds()),
            )
        )
    return checks


def _forecast_then(
    tasks: list[Task], started: datetime, at: datetime
) -> tuple[Decimal, datetime] | None:
    """The budget panel's forecast as it stood at ``at``: only agents that existed then, and
    only those finished by then counted as finished."""
    existed = [t for t in tasks if _first_seen(t) <= at]
    ended = [t for t in existed if t.status in TERMINAL and t.finished_at and t.finished_at <= at]
    finished = [t for t in ended if t.started_at]
    if not finished:
        return None
    spent = sum((t.cost_usd for t in ended), Decimal(0))
    cost, finish, _ = forecast_at(finished, spent, len(existed) - len(ended), started, at)
    return cost, finish


def _first_seen(t: Task) -> datetime:
    return min(d for d in (t.created_at, t.queued_at, t.started_at, t.finished_at) if d)
