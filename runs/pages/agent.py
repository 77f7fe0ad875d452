"""An agent's attempts, read back from its events: each ``task.started`` opens one, the next
retry, rate limit or end closes it; an operator's "Retry failed" starts a new try. The Task row
keeps only the current try (its ``attempts`` count toward ``max_attempts``), so the agent page
shows the whole story from the log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runs.eventlog.event_types import EventType

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
