"""Which worker processes are alive, from Redis: each process that runs agents keeps a key
``{prefix}alive:{holder}`` refreshed every third of ``HARNESS_WORKER_TTL_S`` by a daemon thread,
expiring that long after the last refresh. A process killed (SIGKILL, OOM) or frozen (SIGSTOP, a
paused VM) stops refreshing, so the agents it holds can be taken over within seconds instead of
when their lease of minutes ends.

A Redis restart loses every key at once. ``{prefix}alive-since`` (no expiry, written by the first
refresh that finds it missing) says when the keys began to be written again: until a whole TTL
has passed since then no holder is judged dead, so a restart never passes for every worker's
death. The same kind of marker, ``redis_lost_state``, tells the sweeper that Redis lost what it
held (queued and delayed messages among it).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable

import redis
from django.conf import settings

from harness_site.redis_client import get_redis

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# The holder name of this process and the pid it was made in: a forked pool child is a new
# process with no refresh thread, so it makes its own name and thread on first use.
_me: dict[str, object] = {"pid": None, "holder": ""}


def _key(holder: str) -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}alive:{holder}"


def _since_key() -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}alive-since"


def refresh(holder: str) -> None:
    """Write this process's key now (and the since-marker if Redis lost it)."""
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    pipe.set(_key(holder), 1, px=int(settings.HARNESS_WORKER_TTL_S * 1000))
    pipe.set(_since_key(), f"{time.time():.3f}", nx=True)
    pipe.execute()


def me() -> str:
    """This process's holder name, its refresh thread started on first use in each process."""
    pid = os.getpid()
    with _lock:
        if _me["pid"] == pid:
            return str(_me["holder"])
        holder = f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"
        _me.update(pid=pid, holder=holder)
    try:
        refresh(holder)  # at once: the first claim must not find its own holder dead
    except redis.RedisError as exc:
        logger.warning("could not write this worker's liveness key: %s", type(exc).__name__)
    thread = threading.Thread(
        target=_refresh_loop, args=(holder, pid), name="harness-liveness", daemon=True
    )
    thread.start()
    return holder


def _refresh_loop(holder: str, pid: int) -> None:
    period = settings.HARNESS_WORKER_TTL_S / 3
    failing = False
    while _me["pid"] == pid:
        try:
            refresh(holder)
        except redis.RedisError as exc:  # Redis away for a moment: the next period retries
            if not failing:
                logger.warning("liveness key not refreshed: %s", type(exc).__name__)
            failing = True
        else:
            failing = False
        time.sleep(period)


def dead(holders: Iterable[str]) -> set[str]:
    """The holders among ``holders`` whose process has stopped refreshing its key. Empty while
    the keys may still be being rewritten after a Redis restart (less than a TTL ago)."""
    names = sorted({h for h in holders if h})
    if not names:
        return set()
    client = get_redis()
    since = client.get(_since_key())
    if since is None or time.time() - float(since) < settings.HARNESS_WORKER_TTL_S:
        return set()
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(_key(name))
    return {name for name, exists in zip(names, pipe.execute(), strict=True) if not exists}


def redis_lost_state() -> bool:
    """True the first time it is asked after Redis started empty (restarted without its data,
    or new): whatever was queued or delayed there is gone. One caller gets True per loss."""
    key = f"{settings.HARNESS_REDIS_PREFIX}state-since"
    return bool(get_redis().set(key, f"{time.time():.3f}", nx=True))
