"""The budget panel's forecast, replayed at 25/50/75% of agents done and checked against the
outcome (finished run) or the current forecast (live run), from hand-built tasks."""

from __future__ import annotations

from decimal import Decimal

from runs.models import Run, Task
from runs.pages.run import dashboard, forecast
from tests.runs.test_timeline import T0, at, done, task


def _tasks() -> list[Task]:
    # One at a time from the run's start: done at 10, 20, 30 s, then a slow, dear one at 60 s.
    return [
        done(0, 0, 10, cost_usd=Decimal("0.01")),
        done(0, 10, 20, cost_usd=Decimal("0.01")),
        done(0, 20, 30, cost_usd=Decimal("0.01")),
        done(0, 30, 60, cost_usd=Decimal("0.04")),
    ]


def test_finished_run_compares_each_milestone_with_the_last_finish_and_total_cost() -> None:
    run = Run(status=Run.Status.AWAITING_REVIEW, started_at=T0, finished_at=at(65))
    tasks = _tasks()
    checks = forecast.forecast_checks(run, tasks, dashboard.budget(run, tasks, at(70)))
    assert [c.percent for c in checks] == [25, 50, 75]
    half = checks[1]
    assert half.final and half.at == at(20)
    # 2 done in 20 s: 2 more need 20 s; mean cost $0.01 each.
    assert half.said_finish == at(40) and half.said_cost == Decimal("0.04")
    assert half.finish == at(60) and half.cost == Decimal("0.07")
    assert half.late_s == 20 and half.late_text == "20 s late"
    assert round(half.late_percent) == 33  # of the 60 s the run took
    assert half.cost_error_text == "-43%"
    assert [c.said_finish for c in checks] == [at(40)] * 3


def test_live_run_compares_reached_milestones_with_the_current_forecast() -> None:
    run = Run(status=Run.Status.RUNNING, started_at=T0)
    tasks = [*_tasks()[:2], task(status=Task.Status.RUNNING, started_at=at(20)), task()]
    tasks[-1].status = Task.Status.PENDING
    current = dashboard.budget(run, tasks, at(25))
    checks = forecast.forecast_checks(run, tasks, current)
    assert [c.percent for c in checks] == [25, 50]
    assert not checks[0].final
    assert checks[1].finish == current.forecast_finish
    assert checks[1].cost == current.forecast_cost


def test_no_check_before_any_agent_is_done() -> None:
    run = Run(status=Run.Status.RUNNING, started_at=T0)
    tasks = [task(status=Task.Status.RUNNING, started_at=at(1))]
    assert forecast.forecast_checks(run, tasks, dashboard.budget(run, tasks, at(5))) == []


def test_early_finish_reads_early() -> None:
    run = Run(status=Run.Status.CANCELLED, started_at=T0, finished_at=at(12))
    tasks = [done(0, 0, 10), task(status=Task.Status.CANCELLED, finished_at=at(11))]
    tasks += [task(status=Task.Status.CANCELLED, finished_at=at(11)) for _ in range(2)]
    checks = forecast.forecast_checks(run, tasks, dashboard.budget(run, tasks, at(12)))
    assert checks[0].percent == 25
    assert checks[0].late_text == "29 s early"  # it said 10 s + 3 x 10 s = 40 s, all done at 11
