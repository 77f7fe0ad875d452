"""The run page's timeline: waterfall lanes or aggregated rows, waiting agents and the
concurrency over time, from hand-built tasks (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runs.models import Run, Task
from runs.pages.run import timeline

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
_ids = iter(range(1, 100_000))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def task(**fields: Any) -> Task:
    defaults: dict[str, Any] = {
        "pk": next(_ids),
        "status": Task.Status.SUCCEEDED,
        "created_at": T0,
        "scope_label": "app/a.py",
        "role": "auditor",
    }
    return Task(**{**defaults, **fields})


def done(ready: float, start: float, end: float, **fields: Any) -> Task:
    return task(queued_at=at(ready), started_at=at(start), finished_at=at(end), **fields)


def live_run(cap: int = 2) -> Run:
    return Run(status=Run.Status.RUNNING, max_concurrency=cap, started_at=T0)


def finished_run(end: float, cap: int = 2) -> Run:
    return Run(
        status=Run.Status.AWAITING_REVIEW, max_concurrency=cap, started_at=T0, finished_at=at(end)
    )


def test_small_run_draws_one_lane_per_agent_with_its_wait_and_work() -> None:
    tasks = [done(0, 2, 10, model_seconds=5, tool_seconds=1), done(0, 0, 4)]
    w = timeline.waterfall(finished_run(10), tasks, at(20))
    assert w.per_row == 1 and not w.aggregated and w.agents == 2
    first = next(lane for lane in w.lanes if lane.task_id == tasks[0].pk)
    assert (first.wait, first.model, first.tool, first.other) == (2, 5, 1, 2)
    assert w.span == 10


def test_past_the_limit_every_agent_is_counted_in_aggregated_rows() -> None:
    tasks = [
        done(i, i + 1, i + 3, created_at=at(i), scope_label=f"pkg/m{i}.py") for i in range(401)
    ]
    w = timeline.waterfall(finished_run(500), tasks, at(600))
    assert w.aggregated
    per_row = -(-401 // timeline.AGGREGATE_ROWS)  # ceil(401 / 50) = 9
    assert w.per_row == per_row
    assert len(w.lanes) == -(-401 // per_row)
    assert sum(lane.agents for lane in w.lanes) == 401
    assert w.lanes[0].label == f"agents 1-{per_row} · pkg/"
    assert w.lanes[-1].label == f"agents {400 // per_row * per_row + 1}-401 · pkg/"
    # A row spans its first agent's ready time to its last one's finish, split by shares.
    row = w.lanes[0]
    assert row.start == 0
    assert row.wait + row.model + row.tool + row.other == per_row + 2  # from 0 to (n-1)+3
    assert "summed time: wait 33%" in row.title


def test_agents_still_waiting_while_the_run_runs_get_a_growing_wait_bar() -> None:
    held = task(status=Task.Status.PENDING, created_at=at(0))
    queued = task(status=Task.Status.QUEUED, created_at=at(0), queued_at=at(5))
    run = live_run()
    w = timeline.waterfall(run, [held, queued], at(30))
    waits = {lane.task_id: lane.wait for lane in w.lanes}
    assert waits == {held.pk: 30, queued.pk: 30}
    assert all(lane.waiting for lane in w.lanes)
    later = timeline.waterfall(run, [held, queued], at(40))
    assert {lane.wait for lane in later.lanes} == {40}


def test_queue_wait_counts_agents_that_could_start_and_the_longest_wait() -> None:
    tasks = [
        task(status=Task.Status.PENDING, created_at=at(10)),
        task(status=Task.Status.QUEUED, created_at=at(0), queued_at=at(20)),
        task(status=Task.Status.RUNNING, started_at=at(1)),
        task(status=Task.Status.AWAITING_APPROVAL),
    ]
    wait = timeline.queue_wait(live_run(), tasks, at(95))
    assert (wait.count, wait.longest_s, wait.longest_text) == (2, 95, "1m 35s")
    assert timeline.queue_wait(finished_run(50), tasks, at(95)).count == 0


def test_concurrency_series_counts_running_waiting_and_retrying_with_exact_peaks() -> None:
    run = finished_run(30, cap=2)
    a = done(0, 0, 10)
    b = done(0, 0, 20)
    c = done(0, 10, 30)  # held by the cap of 2 until a finished
    retry = timeline.RetryWait(b.pk, at(12), at(16))
    s = timeline.concurrency_series(run, [a, b, c], [retry], at(60), points=31)
    assert (s.peak_running, s.peak_waiting, s.peak_retrying, s.cap) == (2, 1, 1, 2)
    assert s.span == 30 and len(s.times) == 31
    by_second = dict(zip(s.times, zip(s.running, s.waiting, s.retrying, strict=True), strict=True))
    assert by_second[5] == (2, 1, 0)
    assert by_second[14] == (1, 0, 1)  # b waits to retry, c runs
    assert by_second[18] == (2, 0, 0)
    assert by_second[30] == (0, 0, 0)


def test_a_live_series_ends_with_what_is_open_now() -> None:
    running = task(status=Task.Status.RUNNING, queued_at=at(0), started_at=at(1))
    waiting = task(status=Task.Status.PENDING, created_at=at(0))
    s = timeline.concurrency_series(live_run(), [running, waiting], [], at(10))
    assert (s.running[-1], s.waiting[-1]) == (1, 1)


def test_sampling_never_exceeds_the_limit() -> None:
    tasks = [done(i, i, i + 1) for i in range(1000)]
    s = timeline.concurrency_series(finished_run(1001), tasks, [], at(2000), points=10_000)
    assert len(s.times) == timeline.SERIES_POINTS
