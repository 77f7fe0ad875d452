"""An agent's page: its findings, steps, what it kept out of its findings, and its attempts,
read back from its events: each ``task.started`` opens one, the next retry, rate limit or end
closes it; an operator's "Retry failed" starts a new try. The Task row keeps only the current
try (its ``attempts`` count toward ``max_attempts``), so the agent page shows the whole story
from the log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runs.eventlog.event_types import EventType
from runs.models import Event, Run, Task
from runs.pages.findings import load_ranked, ranked_ids, report_ranks

ENDS = {
    EventType.TASK_RETRYING: "retried",
    EventType.TASK_RATE_LIMITED: "rate limited",
    EventType.TASK_SUCCEEDED: "succeeded",
    EventType.TASK_FAILED: "failed",
    EventType.TASK_CANCELLED: "cancelled",
    EventType.TASK_SKIPPED: "skipped",
}
KINDS = [EventType.TASK_STARTED, EventType.TASK_RETRY_REQUESTED, *ENDS]


@dataclass
class Attempt:
    number: int  # over the agent's whole life
    attempt_try: int  # 1 for the planned try, +1 after each operator retry
    started: datetime
    ended: datetime | None = None
    outcome: str = "running"
    error: str = ""

    @property
    def seconds(self) -> float | None:
        return (self.ended - self.started).total_seconds() if self.ended else None


@dataclass
class History:
    attempts: list[Attempt]
    retries_requested: int

    @property
    def total(self) -> int:
        return len(self.attempts)


def history(events: list[tuple[str, datetime, dict[str, Any]]]) -> History:
    """``events``: (type, time, payload) of one agent, oldest first."""
    attempts: list[Attempt] = []
    current: Attempt | None = None
    tries = 1
    for kind, at, payload in events:
        if kind == EventType.TASK_RETRY_REQUESTED:
            tries += 1
        elif kind == EventType.TASK_STARTED:
            current = Attempt(len(attempts) + 1, tries, at)
            attempts.append(current)
        elif kind in ENDS and current is not None and current.ended is None:
            current.ended, current.outcome = at, ENDS[EventType(kind)]
            current.error = str((payload or {}).get("error", ""))[:300]
    return History(attempts, tries - 1)


def agent_context(run: Run, task: Task) -> dict[str, Any]:
    """The agent page: big content stays in the row until the page asks for it."""
    ranks = report_ranks(run)
    rows = (
        Event.objects.filter(run_id=run.pk, task_id=task.pk, type__in=KINDS)
        .order_by("seq")
        .values_list("type", "created_at", "payload")
    )
    return {
        "run": run,
        "task": task,
        "findings": load_ranked(ranked_ids(task.findings.all(), ranks), ranks),
        "steps": task.steps.all(),
        "history": history(list(rows)),
        **_analysis_notes(task),
    }


def _analysis_notes(task: Task) -> dict[str, Any]:
    """What the agent kept out of its findings, and said so in its output: findings under a
    ``# nosec``/``# noqa`` marker, third-party files it skipped, findings past its output cap.
    The output is the agent's (untrusted) data: only lists of small dicts are shown, escaped."""
    data = (task.output or {}).get("data") or {}

    def rows(key: str) -> list[dict[str, Any]]:
        value = data.get(key)
        return [r for r in value if isinstance(r, dict)][:200] if isinstance(value, list) else []

    dropped = data.get("dropped_findings")
    return {
        "suppressed": rows("suppressed"),
        "skipped_files": rows("skipped"),
        "dropped": dropped if isinstance(dropped, dict) else None,
    }
