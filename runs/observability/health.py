"""Health of the three things a run needs: the database, Redis and at least one Celery worker."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from harness_site.celery import app

logger = logging.getLogger(__name__)


def check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "vendor": connection.vendor, "ms": _ms(started)}


def check_redis() -> dict[str, Any]:
    started = time.monotonic()
    # A fresh client with short timeouts: a health probe must answer fast when Redis is down.
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": type(exc).__name__}
    finally:
        client.close()
    return {"ok": True, "ms": _ms(started)}


def check_workers(timeout: float = 1.0) -> dict[str, Any]:
    started = time.monotonic()
    try:
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:
        return {"ok": False, "workers": [], "error": type(exc).__name__}
    names = sorted(name for reply in replies or [] for name in reply)
    return {"ok": bool(names), "workers": names, "ms": _ms(started)}


def health() -> tuple[bool, dict[str, Any]]:
    database = check_database()
    redis_state = check_redis()
    # Without Redis the worker ping would only time out: report it down straight away.
    workers = (
        check_workers()
        if redis_state["ok"]
        else {"ok": False, "workers": [], "error": "redis down"}
    )
    ok = bool(database["ok"] and redis_state["ok"] and workers["ok"])
    if not ok:
        # Expected while a dependency restarts: one WARNING line saying what is down (Django's
        # own "Service Unavailable" ERROR for the 503 is dropped: see logfilters.QuietHealth).
        parts = {"database": database, "redis": redis_state, "workers": workers}
        down = ", ".join(
            f"{name} ({part.get('error', 'no answer')})"
            for name, part in parts.items()
            if not part["ok"]
        )
        logger.warning("health degraded: %s down", down)
    return ok, {
        "status": "ok" if ok else "degraded",
        "database": database,
        "redis": redis_state,
        "workers": workers,
    }


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
