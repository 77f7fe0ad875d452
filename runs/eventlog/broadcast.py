"""Committed events → the browsers' channel groups, off the committing thread.

A commit hands ``(run, last seq, types)`` to this process's broadcaster and returns at once; one
daemon thread with one event loop (and so one Redis connection) sends them, merging everything
that arrived for a run within ``WINDOW_S`` into one message. A busy worker with hundreds of agents
in flight therefore pays microseconds per commit instead of a new event loop and a new Redis
connection, and a browser gets one message per run per window instead of one per event.

Delivery is at most once, as the channel layer's is: a message lost here (the process exits in
the window, Redis is away) is repaired by the consumer's resync on (re)connect, and the next
message of the run carries the newest seq anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from channels.layers import get_channel_layer

from runs.eventlog.messages import RunEventsMessage, RunsChangedMessage
from runs.observability.counters import counters

logger = logging.getLogger(__name__)

RUNS_LIST_GROUP = "runs-list"
WINDOW_S = 0.05


class Broadcaster:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[int, tuple[int, set[str]]] = {}
        # When each run's oldest unsent commit arrived: the broadcast lag is measured from it.
        self._since: dict[int, float] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, run_id: int, last_seq: int, types: list[str]) -> None:
        with self._lock:
            seq, known = self._pending.get(run_id, (0, set()))
            self._pending[run_id] = (max(seq, last_seq), known | set(types))
            self._since.setdefault(run_id, time.monotonic())
            self._ensure_thread()
        self._wake.set()

    def _ensure_thread(self) -> None:
        # A forked child (a prefork pool process) inherits the object but not the thread.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="broadcaster", daemon=True)
            self._thread.start()

    def _take(self) -> tuple[dict[int, tuple[int, set[str]]], dict[int, float]]:
        with self._lock:
            pending, self._pending = self._pending, {}
            since, self._since = self._since, {}
            return pending, since

    def _loop(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            self._wake.wait()
            time.sleep(WINDOW_S)  # let the rest of a burst arrive: one message per run
            self._wake.clear()
            pending, since = self._take()
            if pending:
                try:
                    loop.run_until_complete(_send(pending))
                except Exception:  # a broadcast failure must never stop later ones
                    logger.warning("broadcast of %d run(s) failed; clients resync", len(pending))
                    continue
                # Commit to sent, per run message: what harness_event_broadcast_lag_seconds shows.
                now = time.monotonic()
                for started in since.values():
                    counters.observe("event_broadcast_lag_seconds", now - started)


async def _send(pending: dict[int, tuple[int, set[str]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for run_id, (last_seq, types) in pending.items():
        message: RunEventsMessage = {
            "type": "run.events",
            "run_id": run_id,
            "last_seq": last_seq,
            "types": sorted(types),
        }
        changed: RunsChangedMessage = {"type": "runs.changed", "run_id": run_id}
        await layer.group_send(f"run-{run_id}", message)
        await layer.group_send(RUNS_LIST_GROUP, changed)


_broadcaster = Broadcaster()


def broadcast_run_events(run_id: int, seqs: list[int], types: list[str]) -> None:
    """Queue one run's committed events for the browsers (returns at once)."""
    _broadcaster.submit(run_id, max(seqs), types)
