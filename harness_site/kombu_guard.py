"""A guard around two kombu/celery cleanup paths that break when Redis goes away under a worker.

When the broker connection drops, Celery releases the kombu Connection (the Redis transport's
``client`` becomes None) and then closes its channels. Closing a channel that still holds
delivered, unacknowledged messages restores them (``QoS.restore_unacked_once``), which asks the
transport for its connection parameters and fails with ``AttributeError: 'NoneType' object has
no attribute 'hostname'`` (kombu/transport/redis.py ``Channel._connparams``). An AttributeError
is not a connection error, so Celery treats it as unrecoverable and the worker exits (seen on an
idle worker when Redis restarted; the same failure as celery/kombu#970 and #582, still present in
kombu 5.7). Its neighbour: ``celery.bootsteps`` closes those channels through
``ignore_errors(c.connection, ...)`` with ``c.connection`` already None, which logs
``AttributeError: 'NoneType' object has no attribute 'connection_errors'`` with a traceback on
every Redis restart.

The guard turns the first into the Redis ``ConnectionError`` it really is (Celery then
reconnects; the messages stay in Redis's unacked set for the visibility-timeout restore, and the
sweeper re-sends whatever a restarted, empty Redis lost) and lets the second ignore the
connection errors of the Redis transport. Remove it once kombu checks for a released client.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import redis
from celery import bootsteps
from kombu.transport import redis as kombu_redis

_installed = False


def install() -> None:
    """Patch once per process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    # Private attributes that the kombu and celery stubs do not declare: patched on purpose.
    channel = cast(Any, kombu_redis.Channel)
    steps = cast(Any, bootsteps)
    connparams = channel._connparams

    @functools.wraps(connparams)
    def guarded_connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already released")
        return connparams(self, asynchronous=asynchronous)

    channel._connparams = guarded_connparams

    ignore_errors = steps.ignore_errors
    redis_errors = kombu_redis.get_redis_error_classes()  # .connection_errors, .channel_errors

    @functools.wraps(ignore_errors)
    def guarded_ignore_errors(conn: Any, fun: Any = None, *args: Any, **kwargs: Any) -> Any:
        # A released connection: what may fail is the Redis transport's own connection errors.
        return ignore_errors(conn or redis_errors, fun, *args, **kwargs)

    steps.ignore_errors = guarded_ignore_errors
