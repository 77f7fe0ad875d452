"""Agents' model and tool calls stored as steps, with their events: for one call or for a batch
of many agents' calls in one transaction.

A call is stored before its agent goes on, so a redelivered agent replays it instead of paying
again. Each call used to be its own transaction taking the run's row for its event's seq; in a
busy worker ``runs.actions.group_commit`` gathers the calls that end together and stores them
here at once: one INSERT of steps, one seq allocation and one INSERT of events per run. The
batch is all or nothing: a duplicate delivery's step (its index already stored) fails it, and
each agent then stores its own call alone (``runs.engine.runtime``), where the duplicate keeps
the step stored first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_events
from runs.models import Run, Step, Task


@dataclass(frozen=True)
class StoredCall:
    """One call of an agent, waiting to be stored: its step and the event that records it."""

    step: Step
    event_type: EventType
    payload: Mapping[str, Any]
    task: Task


def store_calls(batch: list[StoredCall]) -> None:
    """Store every call in one transaction (the steps first, then each run's events: a run's row
    is taken for its seqs last, held the shortest, by run id like every other writer)."""
    with transaction.atomic():
        Step.objects.bulk_create([call.step for call in batch])
        events: dict[int, list[EventItem]] = defaultdict(list)
        for call in batch:
            events[call.task.run_id].append((call.event_type, call.payload, call.task))
        for run_id in sorted(events):
            # The log needs only the run's id: its seq counter is taken in the UPDATE.
            record_events(Run(pk=run_id), events[run_id])
