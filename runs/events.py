"""The event log and its broadcast.

``record_event`` must be called inside the transaction that makes the change it records: the seq
comes from a row-locked counter on the Run, so seqs are gap-free per run and an event exists if
and only if its change committed. Broadcasts go out only after commit, batched: every event a
transaction wrote for a run becomes one small channel-layer message (seqs and types, never big
content), which the run page's consumer turns into fragments.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F

from runs.models import Event, Run

if TYPE_CHECKING:
    from runs.models import Task

logger = logging.getLogger(__name__)

RUNS_LIST_GROUP = "runs-list"

_pending = threading.local()


def record_event(
    run: Run, type: str, payload: dict[str, Any] | None = None, task: Task | None = None
) -> Event:
    """Append an event to the run's log. Call inside ``transaction.atomic()``."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event must run inside the transaction of its change")
    seq = run.next_seq()
    event = Event.objects.create(
        run_id=run.pk, seq=seq, type=type, task=task, payload=payload or {}
    )
    _queue_broadcast(run.pk, seq, type)
    return event


def record_events(run: Run, items: list[tuple[str, dict[str, Any], Task | None]]) -> list[Event]:
    """Append several events at once (one seq allocation, one INSERT). Same rules as
    ``record_event``; used where one change records many facts (a plan of 1,000 tasks)."""
    if not items:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_events must run inside the transaction of its change")
    Run.objects.filter(pk=run.pk).update(last_seq=F("last_seq") + len(items))
    last = Run.objects.filter(pk=run.pk).values_list("last_seq", flat=True).get()
    run.last_seq = last
    first = last - len(items) + 1
    events = [
        Event(run_id=run.pk, seq=first + i, type=type, task=task, payload=payload)
        for i, (type, payload, task) in enumerate(items)
    ]
    Event.objects.bulk_create(events)
    for event in events:
        _queue_broadcast(run.pk, event.seq, event.type)
    return events


def _queue_broadcast(run_id: int, seq: int, type: str) -> None:
    # One batch per outermost transaction (identified by its Atomic object). A batch whose
    # transaction rolls back is simply never flushed. Every event registers the flush callback, so
    # a savepoint rollback that drops one registration cannot drop the whole batch; the first
    # callback to run flushes and the rest find it empty.
    connection = transaction.get_connection()
    owner = connection.atomic_blocks[0]
    batch: _Batch | None = getattr(_pending, "batch", None)
    if batch is None or batch.owner is not owner:
        batch = _pending.batch = _Batch(owner)
    batch.items.setdefault(run_id, []).append((seq, type))
    transaction.on_commit(batch.flush)


class _Batch:
    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.items: dict[int, list[tuple[int, str]]] = {}

    def flush(self) -> None:
        items, self.items = self.items, {}
        if getattr(_pending, "batch", None) is self:
            _pending.batch = None
        for run_id, events in items.items():
            broadcast_run_events(run_id, [s for s, _ in events], sorted({t for _, t in events}))


def broadcast_run_events(run_id: int, seqs: list[int], types: list[str]) -> None:
    """One channel-layer message per run per committed transaction. Delivery is at-most-once by
    design (NOTES.md): a lost message is repaired by the consumer's resync on (re)connect."""
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "run.events", "run_id": run_id, "last_seq": max(seqs), "types": types}

        async def send() -> None:
            await layer.group_send(f"run-{run_id}", message)
            await layer.group_send(RUNS_LIST_GROUP, {"type": "runs.changed", "run_id": run_id})

        async_to_sync(send)()
    except Exception:  # a broadcast failure must never undo or fail the committed change
        logger.warning("broadcast for run %s failed; clients resync on reconnect", run_id)
