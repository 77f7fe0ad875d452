"""The run's timeline (waterfall), computed from the tasks ``dashboard.load_tasks`` loaded.

Pure functions over already-loaded rows, like ``runs/dashboard.py``: no query here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from runs.dashboard import TERMINAL, agent_label
from runs.models import Task

WATERFALL_MAX_ROWS = 150


@dataclass
class Lane:
    task: Task
    label: str
    start: float  # seconds since the first queued_at
    queue: float
    model: float
    tool: float
    other: float  # running time not spent in model or tool calls
    running: bool


@dataclass
class Waterfall:
    lanes: list[Lane]
    span: float  # seconds covered by the x axis
    hidden: int  # lanes left out past WATERFALL_MAX_ROWS


def waterfall(tasks: list[Task], now: datetime | None = None) -> Waterfall:
    now = now or timezone.now()
    timed = [t for t in tasks if t.queued_at or t.started_at]
    if not timed:
        return Waterfall([], 0.0, 0)

    def entered(t: Task) -> datetime:
        return t.queued_at or t.started_at or now

    origin = min(entered(t) for t in timed)
    timed.sort(key=lambda t: (entered(t), t.pk))
    lanes: list[Lane] = []
    span = 0.0
    for t in timed:
        queued = entered(t)
        start = (queued - origin).total_seconds()
        queue = ((t.started_at or t.finished_at or now) - queued).total_seconds()
        run_s = 0.0
        if t.started_at:
            run_s = max(0.0, ((t.finished_at or now) - t.started_at).total_seconds())
        model_s = min(t.model_seconds, run_s) if run_s else t.model_seconds
        tool_s = min(t.tool_seconds, max(0.0, run_s - model_s)) if run_s else t.tool_seconds
        other = max(0.0, run_s - model_s - tool_s)
        queue = max(0.0, queue)
        span = max(span, start + queue + max(run_s, model_s + tool_s))
        lanes.append(
            Lane(
                t,
                agent_label(t),
                start,
                queue,
                model_s,
                tool_s,
                other,
                running=t.status not in TERMINAL,
            )
        )
    hidden = max(0, len(lanes) - WATERFALL_MAX_ROWS)
    return Waterfall(lanes[:WATERFALL_MAX_ROWS], max(span, 0.001), hidden)
