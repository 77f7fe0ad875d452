"""The sweeper thread of a worker process: every ``HARNESS_SWEEP_S`` the one worker that wins a
short Redis lease runs ``runs.actions.sweep.sweep`` (so many workers sweep once, and when the
sweeping worker dies another takes over at the next period). Redis or database errors skip one
period: the sweeper exists for exactly the moments when those are unwell. Every
``HARNESS_SNAPSHOT_GC_S`` the worker winning another lease also removes the snapshots no run
references (``runs.actions.snapshots.gc_snapshots``)."""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from harness_site.redis_client import get_redis
from runs.actions.snapshots import gc_snapshots
from runs.actions.sweep import sweep

logger = logging.getLogger(__name__)

_stop = threading.Event()


def _lease_key() -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}sweeper"


def sweep_once(owner: str) -> bool:
    """Sweep if this process wins this period's lease; True if it swept."""
    period_ms = int(settings.HARNESS_SWEEP_S * 1000)
    if not get_redis().set(_lease_key(), owner, nx=True, px=max(100, period_ms - 50)):
        return False
    try:
        sweep()
    finally:
        close_old_connections()
    return True


def collect_once(owner: str) -> bool:
    """Remove unreferenced snapshots if this process wins this period's lease; True if it did."""
    period_ms = int(settings.HARNESS_SNAPSHOT_GC_S * 1000)
    key = f"{settings.HARNESS_REDIS_PREFIX}snapshot-gc"
    if period_ms <= 0 or not get_redis().set(key, owner, nx=True, px=period_ms):
        return False
    try:
        garbage = gc_snapshots()
    finally:
        close_old_connections()
    if garbage:
        logger.info("snapshot gc %s", garbage.summary())
    return True


def _what(exc: Exception) -> str:
    return "Redis" if isinstance(exc, redis.RedisError) else "the database"


def start(owner: str) -> threading.Thread:
    """Start the sweeper thread (a daemon: it dies with the worker)."""
    _stop.clear()

    def loop() -> None:
        down: str | None = None  # what is unreachable, while it stays so
        while not _stop.wait(settings.HARNESS_SWEEP_S):
            try:
                sweep_once(owner)
            except (redis.RedisError, DatabaseError) as exc:
                # Expected while Redis or the database restarts: one line when it starts and
                # one when it ends, not a traceback every period.
                if down is None:
                    logger.warning(
                        "sweep skipped until %s recovers (%s)", _what(exc), type(exc).__name__
                    )
                down = _what(exc)
                continue
            except Exception:  # one bad period must not end liveness for the process
                logger.warning("sweep skipped", exc_info=True)
            if down is not None:
                logger.info("sweeping again: %s is back", down)
                down = None
            try:
                collect_once(owner)
            except Exception:  # the store's trouble must not stop the sweeps
                logger.warning("snapshot gc skipped", exc_info=True)

    thread = threading.Thread(target=loop, name="harness-sweeper", daemon=True)
    thread.start()
    return thread


def stop() -> None:
    _stop.set()
