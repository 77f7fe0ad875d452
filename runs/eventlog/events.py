"""The event log and its broadcast.

``record_event`` must be called inside the transaction that makes the change it records: the seq
comes from a row-locked counter on the Run, so seqs are gap-free per run and an event exists if and
only if its change committed. Broadcasts go out only after commit: the events a transaction wrote
for a run go to this process's broadcaster (``runs/eventlog/broadcast.py``), which sends one small
channel-layer message per run per short window (seqs and types, never big content); the run page's
consumer turns it into fragments. The same commit hands the few events announced outside
(``runs/eventlog/hooks.py``) to the webhook fan-out, and counts the agents it finished for
``/metrics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from runs.eventlog.broadcast import broadcast_run_events
from runs.eventlog.event_types import EventType, check_payload
from runs.eventlog.hooks import HOOKED, Announced, announce, webhook_kinds
from runs.models import Event, Run
from runs.observability.counters import counters

if TYPE_CHECKING:
    from runs.models import Task

logger = logging.getLogger(__name__)

_pending = threading.local()


# One event to write: its type, its payload (the shape ``runs.eventlog.event_types``
# declares), its task.
EventItem = tuple[EventType, Mapping[str, Any], "Task | None"]


def record_event(
    run: Run,
    type: EventType,
    payload: Mapping[str, Any] | None = None,
    task: Task | None = None,
) -> Event:
    """Append an event to the run's log. Call inside ``transaction.atomic()``."""
    return record_events(run, [(type, payload or {}, task)])[0]


def record_events(run: Run, items: Sequence[EventItem]) -> list[Event]:
    """Append events at once (one seq allocation under the run's row lock, one INSERT).

    Every payload must match its type's declared shape (``runs.eventlog.event_types``): a
    writer that drifts from the vocabulary the dashboard and tests read fails loudly, before
    commit.
    """
    if not items:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_events must run inside the transaction of its change")
    for type, payload, _ in items:
        check_payload(type, payload)
    last = _allocate(run.pk, len(items))
    run.last_seq = last
    first = last - len(items) + 1
    events = [
        Event(run_id=run.pk, seq=first + i, type=str(type), task=task, payload=dict(payload))
        for i, (type, payload, task) in enumerate(items)
    ]
    Event.objects.bulk_create(events)
    for event, (type, payload, _) in zip(events, items, strict=True):
        kinds = webhook_kinds(run, type, payload) if type in HOOKED else ()
        _queue_broadcast(run.pk, event, kinds)
    return events


def _allocate(run_id: int, count: int) -> int:
    """Take ``count`` seqs of the run in one statement (the row stays locked to commit); returns
    the last. RETURNING is in PostgreSQL and in SQLite since 3.35."""
    table = connection.ops.quote_name(Run._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq",  # noqa: S608 (our own table name)
            [count, run_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run_id} is gone")
    return int(row[0])


def _queue_broadcast(run_id: int, event: Event, kinds: tuple[str, ...]) -> None:
    # One batch per outermost transaction (identified by its Atomic object). A batch whose
    # transaction rolls back is simply never flushed. Every event registers the flush callback, so
    # a savepoint rollback that drops one registration cannot drop the whole batch; the first
    # callback to run flushes and the rest find it empty.
    connection = transaction.get_connection()
    owner = connection.atomic_blocks[0]
    batch: _Batch | None = getattr(_pending, "batch", None)
    if batch is None or batch.owner is not owner:
        batch = _pending.batch = _Batch(owner)
    batch.items.setdefault(run_id, []).append((event.seq, event.type))
    if kinds:
        batch.announced.append((event.pk, list(kinds)))
    transaction.on_commit(batch.flush)


class _Batch:
    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.items: dict[int, list[tuple[int, str]]] = {}
        self.announced: list[Announced] = []

    def flush(self) -> None:
        items, self.items = self.items, {}
        announced, self.announced = self.announced, []
        if getattr(_pending, "batch", None) is self:
            _pending.batch = None
        finished: dict[str, int] = {}
        for run_id, events in items.items():
            broadcast_run_events(run_id, [s for s, _ in events], sorted({t for _, t in events}))
            for _, type in events:
                if type in _FINISHED_AGENT:
                    status = _FINISHED_AGENT[type]
                    finished[status] = finished.get(status, 0) + 1
        for status, count in finished.items():
            counters.add("agent_completions", count, status=status)
        if announced:
            announce(announced)


# An agent's last event of a try: what harness_agent_completions_total counts, by status.
_FINISHED_AGENT: dict[str, str] = {
    EventType.TASK_SUCCEEDED: "succeeded",
    EventType.TASK_FAILED: "failed",
    EventType.TASK_SKIPPED: "skipped",
    EventType.TASK_CANCELLED: "cancelled",
}
