"""Worker capacity, as the workers themselves advertise it: each Celery worker keeps a Redis key
``{prefix}worker-slots:{hostname}`` holding how many agents it runs at once (its pool's size),
refreshed every ``REFRESH_S`` and expiring after ``TTL_S`` without a refresh (a killed worker
drops out within that time). The launch form and the run page read the total so they never
promise a concurrency the workers cannot give.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis
from django.conf import settings

from harness_site.redis_client import get_redis

logger = logging.getLogger(__name__)

TTL_S = 45
REFRESH_S = 15
CACHE_S = 5.0

_stops: dict[str, threading.Event] = {}
_cached: tuple[float, WorkerSlots] | None = None


class WorkerSlots:
    """The live workers and how many agents they can run at once, all together."""

    def __init__(self, workers: dict[str, int], *, known: bool = True) -> None:
        self.workers = workers
        self.known = known  # False when Redis could not be asked

    @property
    def total(self) -> int:
        return sum(self.workers.values())

    @property
    def count(self) -> int:
        return len(self.workers)


def _key(hostname: str) -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}worker-slots:{hostname}"


def advertise(hostname: str, slots: int) -> None:
    """Publish this worker's slots now and keep them fresh until ``withdraw``."""
    stop = _stops[hostname] = threading.Event()

    def refresh() -> None:
        while True:
            try:
                get_redis().set(_key(hostname), slots, ex=TTL_S)
            except redis.RedisError as exc:  # Redis away for a moment: the next refresh retries
                logger.warning("could not advertise worker slots: %s", type(exc).__name__)
            if stop.wait(REFRESH_S):
                return

    threading.Thread(target=refresh, name="worker-slots", daemon=True).start()


def withdraw(hostname: str) -> None:
    stop = _stops.pop(hostname, None)
    if stop is not None:
        stop.set()
    with contextlib.suppress(redis.RedisError):  # the key expires on its own
        get_redis().delete(_key(hostname))


def worker_slots() -> WorkerSlots:
    """Every live worker's slots (cached for a few seconds: pages ask on every render)."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < CACHE_S:
        return _cached[1]
    try:
        client = get_redis()
        keys = list(client.scan_iter(match=_key("*"), count=500))
        values = client.mget(keys) if keys else []
    except redis.RedisError:
        return WorkerSlots({}, known=False)
    prefix = len(_key(""))
    workers = {
        key.decode()[prefix:]: int(value)
        for key, value in zip(keys, values, strict=True)
        if value is not None and value.isdigit()
    }
    result = WorkerSlots(workers)
    _cached = (now, result)
    return result


def forget_cache() -> None:
    global _cached
    _cached = None
