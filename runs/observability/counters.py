"""Counters every process adds to and ``/metrics`` reads: kept in Redis, added in batches.

Agents finish, model calls are paid and budget reservations are refused in the Celery workers,
while Prometheus scrapes the web process. The counts therefore live where every process of the
deployment already meets: one Redis hash (field = metric name and labels, value = the running
total, ``HINCRBYFLOAT``). prometheus-client's multiprocess mode was the other way; it was not
taken because it needs one directory shared by the web server and every worker (so one
machine: compose's web and worker containers do not share one), an environment variable set
before any import in each process, and clean-up of dead processes' files. Totals in Redis also
outlive a worker restart, so a rate over them sees no false reset.

An add costs a dict update under a lock: a daemon thread per process sends what accumulated
once per ``FLUSH_S`` in one pipeline (and at exit), so the agents' hot path never waits on
Redis. What a killed process had not sent yet (at most ``FLUSH_S`` of counts) is lost, as a
Prometheus client's in-memory counters would be.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from harness_site import otel_metrics
from harness_site.redis_client import get_redis

logger = logging.getLogger(__name__)

FLUSH_S = 1.0
# Upper bounds of the histogram of broadcast lag (seconds).
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]


def redis_key() -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}metrics:counters"


def _field(name: str, labels: Labels) -> str:
    return json.dumps([name, dict(labels)], sort_keys=True, separators=(",", ":"))


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[Key, float] = {}
        self._thread: threading.Thread | None = None
        # A forked child (a prefork pool process) inherits the counts but not the thread: it
        # starts afresh (the parent's counts are the parent's to send).
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending = {}
        self._thread = None

    def add(self, name: str, amount: float = 1.0, /, **labels: str) -> None:
        if not amount:
            return
        self._add(name, amount, labels)
        otel_metrics.add(name, amount, labels)  # its OTLP twin (a no-op without an endpoint)

    def _add(self, name: str, amount: float, labels: dict[str, str]) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="counters", daemon=True)
                self._thread.start()
            self._pending[key] = self._pending.get(key, 0.0) + amount

    def observe(
        self, name: str, value: float, /, buckets: Sequence[float] = LAG_BUCKETS, **labels: str
    ) -> None:
        """One observation of a histogram: cumulative ``_bucket`` counts, ``_sum``, ``_count``."""
        otel_metrics.record(name, value, labels, buckets)
        for bound in buckets:
            if value <= bound:
                self._add(f"{name}_bucket", 1, {**labels, "le": repr(float(bound))})
        self._add(f"{name}_bucket", 1, {**labels, "le": "+Inf"})
        self._add(f"{name}_sum", value, labels)
        self._add(f"{name}_count", 1, labels)

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Send what accumulated (tests and process exit call it directly)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            pipe = get_redis().pipeline(transaction=False)
            for (name, labels), amount in pending.items():
                pipe.hincrbyfloat(redis_key(), _field(name, labels), amount)
            pipe.execute()
        except Exception:  # Redis away: keep the counts for the next flush
            logger.warning("metrics counters could not be sent to Redis; kept for the next try")
            with self._lock:
                for key, amount in pending.items():
                    self._pending[key] = self._pending.get(key, 0.0) + amount


def read_counters() -> dict[Key, float]:
    """Every counter's total across the deployment (what ``/metrics`` exposes)."""
    raw: dict[Any, Any] = get_redis().hgetall(redis_key())
    totals: dict[Key, float] = {}
    for field, value in raw.items():
        name, labels = json.loads(field)
        totals[(name, tuple(sorted(labels.items())))] = float(value)
    return totals


counters = Counters()
atexit.register(counters.flush)
