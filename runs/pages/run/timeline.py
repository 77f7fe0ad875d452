"""The run's timeline: the waterfall of agents and the concurrency over time, computed from the
tasks ``dashboard.load_tasks`` loaded (plus, for retries, ``load_retry_waits``).

Pure functions over already-loaded rows, like ``runs/pages/run/dashboard.py``. An agent's wait
starts when it could have started: when it was created, or when the run started if it was created
during planning. Until a worker takes it, it waits either as ``pending`` (held back by the run's
cap, by its dependencies or for approval) or as ``queued`` (dispatched, waiting for a worker).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Subquery

from runs.eventlog.event_types import EventType
from runs.models import Event, Run, Task
from runs.pages.run.dashboard import TERMINAL, agent_label

# Up to this many agents the waterfall draws one lane each; past it, every agent is still
# counted, in at most AGGREGATE_ROWS rows of consecutive agents (in the order they could start).
WATERFALL_MAX_ROWS = 100
AGGREGATE_ROWS = 50
# The concurrency chart samples its step functions on this many instants at most.
SERIES_POINTS = 200
RETRY_TYPES = (EventType.TASK_RETRYING, EventType.TASK_RATE_LIMITED)
# Statuses of an agent that has not started and could, were a slot free.
WAITING = frozenset({Task.Status.PENDING, Task.Status.QUEUED})


def ready_at(t: Task, run_started: datetime | None) -> datetime:
    """When ``t`` could have started: created, but not before the run started (planning creates
    agents before it runs); never after it was actually queued or started."""
    ready = max(t.created_at, run_started) if run_started else t.created_at
    return min(d for d in (ready, t.queued_at, t.started_at) if d is not None)


def until(run: Run, now: datetime) -> datetime:
    """Where open intervals end: now while the run is active, else when it finished."""
    return run.finished_at or now


# ---------------------------------------------------------------------------------------------
# Waterfall


@dataclass
class Lane:
    """One row: an agent, or (``agents`` > 1) consecutive agents drawn as one bar from the first
    start to the last finish, split in the shares of their summed wait/model/tool/other time."""

    label: str
    title: str  # tooltip: what the row stands for, in words
    start: float  # seconds since the timeline's origin
    wait: float
    model: float
    tool: float
    other: float  # running time not spent in model or tool calls
    running: bool  # the bar still grows: started and not finished
    waiting: bool  # the bar still grows: not started while the run runs
    agents: int = 1
    task_id: int | None = None


@dataclass
class Waterfall:
    lanes: list[Lane]
    span: float  # seconds covered by the x axis
    agents: int  # every agent counted in the lanes
    per_row: int  # agents per row (1: one lane each)
    origin: datetime | None = None

    @property
    def aggregated(self) -> bool:
        return self.per_row > 1


@dataclass
class _Times:
    task: Task
    ready: datetime
    wait: float
    model: float
    tool: float
    other: float
    end: float  # seconds since origin when the bar ends

    @property
    def total(self) -> float:
        return self.wait + self.model + self.tool + self.other


def _times(t: Task, origin: datetime, ready: datetime, end: datetime) -> _Times:
    begun = t.started_at or t.finished_at or end
    wait = max(0.0, (begun - ready).total_seconds())
    run_s = max(0.0, ((t.finished_at or end) - t.started_at).total_seconds()) if t.started_at else 0
    model_s = min(t.model_seconds, run_s)
    tool_s = min(t.tool_seconds, max(0.0, run_s - model_s))
    other = max(0.0, run_s - model_s - tool_s)
    start = (ready - origin).total_seconds()
    return _Times(t, ready, wait, model_s, tool_s, other, start + wait + run_s)


def waterfall(run: Run, tasks: list[Task], now: datetime) -> Waterfall:
    """Every agent, in the order it could start: one lane each up to ``WATERFALL_MAX_ROWS``
    agents, else rows of ``per_row`` consecutive agents."""
    if not tasks:
        return Waterfall([], 0.0, 0, 1)
    end = until(run, now)
    # ``id``, not ``pk`` (a property lookup per call), in the loops over every agent.
    readies = {t.id: ready_at(t, run.started_at) for t in tasks}
    origin = min(readies.values())
    times = sorted(
        (_times(t, origin, readies[t.id], end) for t in tasks), key=lambda x: (x.ready, x.task.id)
    )
    span = max(0.001, max(x.end for x in times))
    live = run.is_active
    if len(times) <= WATERFALL_MAX_ROWS:
        lanes = [_lane(x, origin, live) for x in times]
        return Waterfall(lanes, span, len(times), 1, origin)
    per_row = math.ceil(len(times) / AGGREGATE_ROWS)
    lanes = [
        _bucket(times[i : i + per_row], i + 1, origin, live) for i in range(0, len(times), per_row)
    ]
    return Waterfall(lanes, span, len(times), per_row, origin)


def _lane(x: _Times, origin: datetime, live: bool) -> Lane:
    t = x.task
    label = agent_label(t)
    return Lane(
        label=label,
        title=(
            f"{label} ({t.status}): waited {x.wait:.2f}s, model {x.model:.2f}s, "
            f"tools {x.tool:.2f}s, other {x.other:.2f}s"
        ),
        start=(x.ready - origin).total_seconds(),
        wait=x.wait,
        model=x.model,
        tool=x.tool,
        other=x.other,
        running=t.status not in TERMINAL and t.started_at is not None,
        waiting=live and t.status in WAITING,
        task_id=t.pk,
    )


def _bucket(group: list[_Times], first: int, origin: datetime, live: bool) -> Lane:
    start = (group[0].ready - origin).total_seconds()
    length = max(x.end for x in group) - start
    sums = [sum(getattr(x, k) for x in group) for k in ("wait", "model", "tool", "other")]
    total = sum(sums) or 1.0
    # The bar spans first start to last finish; its segments are the shares of summed time.
    wait, model, tool, other = (length * s / total for s in sums)
    running = sum(1 for x in group if x.task.status not in TERMINAL and x.task.started_at)
    waiting = sum(1 for x in group if x.task.status in WAITING) if live else 0
    last = first + len(group) - 1
    label = f"agents {first}-{last}"
    folder = _common_folder([x.task.scope_label for x in group])
    shares = ", ".join(
        f"{name} {100 * s / total:.0f}%"
        for name, s in zip(("wait", "model", "tools", "other"), sums, strict=True)
    )
    notes = "".join(
        f", {n} {word}" for n, word in ((running, "running"), (waiting, "waiting")) if n
    )
    return Lane(
        label=f"{label} · {folder}/" if folder else label,
        title=(
            f"{label} ({len(group)} agents{notes}): from +{start:.1f}s to "
            f"+{start + length:.1f}s; summed time: {shares}"
        ),
        start=start,
        wait=wait,
        model=model,
        tool=tool,
        other=other,
        running=bool(running),
        waiting=bool(waiting),
        agents=len(group),
    )


def _common_folder(labels: list[str]) -> str:
    """The folder every label of a row shares (``""`` when they share none)."""
    parts = [label.split("/")[:-1] for label in labels]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if any(p != level[0] for p in level):
            break
        common.append(level[0])
    return "/".join(common)


# ---------------------------------------------------------------------------------------------
# Waiting agents


@dataclass(frozen=True)
class QueueWait:
    """Agents that could start and have not, while the run runs, and the longest such wait."""

    count: int
    longest_s: float

    @property
    def longest_text(self) -> str:
        minutes, seconds = divmod(round(self.longest_s), 60)
        return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def queue_wait(run: Run, tasks: list[Task], now: datetime) -> QueueWait:
    if run.status != Run.Status.RUNNING:
        return QueueWait(0, 0.0)
    waits = [
        (now - ready_at(t, run.started_at)).total_seconds() for t in tasks if t.status in WAITING
    ]
    return QueueWait(len(waits), max(waits, default=0.0))


# ---------------------------------------------------------------------------------------------
# Concurrency over time


@dataclass(frozen=True)
class RetryWait:
    """An agent set aside to retry (a rate limit or a transient error) until it started again."""

    task_id: int
    since: datetime
    until: datetime | None


def load_retry_waits(run: Run) -> list[RetryWait]:
    """One query: the retry events of the run and the starts of the agents that retried."""
    retried = Event.objects.filter(run_id=run.pk, type__in=RETRY_TYPES).values("task_id")
    rows = (
        Event.objects.filter(
            run_id=run.pk,
            type__in=[*RETRY_TYPES, EventType.TASK_STARTED],
            task_id__in=Subquery(retried),
        )
        .order_by("seq")
        .values_list("task_id", "type", "created_at")
    )
    open_since: dict[int, datetime] = {}
    waits: list[RetryWait] = []
    for task_id, kind, at in rows:
        if kind == EventType.TASK_STARTED:
            if task_id in open_since:
                waits.append(RetryWait(task_id, open_since.pop(task_id), at))
        else:
            open_since.setdefault(task_id, at)
    waits.extend(RetryWait(task_id, since, None) for task_id, since in open_since.items())
    return waits


@dataclass
class ConcurrencySeries:
    """Step functions sampled at ``times`` (seconds since ``origin``); peaks are exact."""

    cap: int
    span: float
    times: list[float] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    peak_running: int = 0
    peak_waiting: int = 0
    peak_retrying: int = 0
    origin: datetime | None = None

    @property
    def top(self) -> int:
        return max(self.cap, self.peak_running, self.peak_waiting, self.peak_retrying, 1)


def _open(t: Task, end: datetime) -> datetime | None:
    """Where an unfinished agent's open interval ends: nowhere (still open) while it is not
    terminal, else ``end`` (a terminal agent without a finish time: an old row)."""
    return end if t.status in TERMINAL else None


def concurrency_series(
    run: Run,
    tasks: list[Task],
    retries: list[RetryWait],
    now: datetime,
    points: int = SERIES_POINTS,
) -> ConcurrencySeries:
    """Agents running, waiting to start and waiting to retry, over the run's life.

    From the tasks' own times: waiting from ``ready_at`` to the start, running from the first
    start to the finish; a retry wait (from the events) moves the agent from running to
    retrying until its next start.
    """
    series = ConcurrencySeries(cap=run.max_concurrency, span=0.0)
    if not tasks:
        return series
    end = until(run, now)
    readies = [ready_at(t, run.started_at) for t in tasks]
    origin = min(readies)
    changes: list[tuple[float, int, int]] = []  # (second, series index, +1/-1)
    by_id = {t.id: t for t in tasks}

    def add(kind: int, since: datetime, stop: datetime | None) -> None:
        """``stop`` None: still open, so the last sample shows it (no end at ``end``)."""
        a = (since - origin).total_seconds()
        b = (stop - origin).total_seconds() if stop else math.inf
        if b > a:
            changes.append((a, kind, 1))
            if stop:
                changes.append((b, kind, -1))

    for t, ready in zip(tasks, readies, strict=True):
        add(1, ready, t.started_at or t.finished_at or _open(t, end))
        if t.started_at:
            add(0, t.started_at, t.finished_at or _open(t, end))
    for r in retries:
        agent = by_id.get(r.task_id)
        if agent is None or agent.started_at is None:
            continue
        since = max(r.since, agent.started_at)
        stop = r.until or agent.finished_at
        if agent.finished_at and stop:
            stop = min(stop, agent.finished_at)
        if stop is None and agent.status in TERMINAL:
            stop = end
        if stop is None or stop > since:  # the agent did not run meanwhile: running → retrying
            changes.append(((since - origin).total_seconds(), 0, -1))
            if stop:
                changes.append(((stop - origin).total_seconds(), 0, 1))
            add(2, since, stop)
    changes.sort(key=lambda c: (c[0], c[2]))  # ends before starts at the same instant
    span = max(0.001, (end - origin).total_seconds(), *(c[0] for c in changes))
    series.span, series.origin = span, origin
    # Sweep once: the value after every change, and the exact peaks.
    at: list[float] = []
    values: list[tuple[int, int, int]] = []
    level = [0, 0, 0]
    peaks = [0, 0, 0]
    for second, kind, delta in changes:
        level[kind] += delta
        if at and at[-1] == second:
            values[-1] = (level[0], level[1], level[2])
        else:
            at.append(second)
            values.append((level[0], level[1], level[2]))
        peaks[kind] = max(peaks[kind], level[kind])
    series.peak_running, series.peak_waiting, series.peak_retrying = peaks
    n = max(2, min(points, SERIES_POINTS))
    for i in range(n):
        second = span * i / (n - 1)
        j = bisect_right(at, second) - 1
        now_values = values[j] if j >= 0 else (0, 0, 0)
        series.times.append(second)
        series.running.append(now_values[0])
        series.waiting.append(now_values[1])
        series.retrying.append(now_values[2])
    return series
