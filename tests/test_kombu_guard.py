"""harness_site.kombu_guard: a worker whose Redis connection was released must see a connection
error (which Celery recovers from), never kombu's AttributeError (which kills the worker)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import bootsteps
from django.conf import settings
from kombu import Connection

from harness_site import kombu_guard

# The stubs do not declare the function the guard patches.
steps: Any = bootsteps


def released_channel_with_unacked_message() -> tuple[Connection, object]:
    """What Celery leaves when Redis drops: a channel still holding a delivered message, on a
    connection whose transport has already been released (its client is None)."""
    conn = Connection(settings.REDIS_URL)
    channel = conn.channel()
    channel.qos._delivered["tag-1"] = None  # type: ignore[attr-defined]
    conn.transport.client = None
    return conn, channel


def test_closing_a_released_channel_raises_a_connection_error_not_attribute_error() -> None:
    kombu_guard.install()
    _conn, channel = released_channel_with_unacked_message()  # kept alive while closing
    with pytest.raises(Exception) as caught:
        channel.close()  # type: ignore[attr-defined]
    assert isinstance(caught.value, redis.exceptions.ConnectionError), repr(caught.value)
    assert "already released" in str(caught.value)


def test_celery_cleanup_on_a_released_connection_ignores_connection_errors() -> None:
    kombu_guard.install()

    def close() -> None:
        raise redis.exceptions.ConnectionError("gone")

    steps.ignore_errors(None, close)  # no AttributeError, and the ConnectionError ignored

    def broken() -> None:
        raise ValueError("not a connection error")

    with pytest.raises(ValueError):  # anything else still surfaces
        steps.ignore_errors(None, broken)


def test_install_is_idempotent() -> None:
    kombu_guard.install()
    first = steps.ignore_errors
    kombu_guard.install()
    assert steps.ignore_errors is first
