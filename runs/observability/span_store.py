"""Stores finished spans that belong to a run, so the dashboard's timeline and the audit trail
do not depend on an external trace backend.

Spans are written in batches by one background thread per process (like OpenTelemetry's own
``BatchSpanProcessor``): an agent's thread never waits on the database to record its span, and a
hundred agents ending at once cost one INSERT, not a hundred write transactions. A process
killed outright loses at most the last ``FLUSH_EVERY_S`` of spans; a clean shutdown flushes.

Batching is on in workers whose tasks run on this process's threads. In a prefork child
Celery's Django fix-up closes the process's whole connection pool before and after every task
(``close_pool``), under a writer thread's feet; there each span is stored as it ends, in the
task's own connection. A batch that meets a connection error is still kept and tried again at
the next flush (for about ``RETRY_FOR_S``), not dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from agents import semconv
from runs.models import Span

logger = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.2
BATCH_ROWS = 500
# How long a batch that met connection errors is retried before it is given up (with a warning).
RETRY_FOR_S = 10.0
# A worker's exit waits at most this long on a batch that meets connection errors.
SHUTDOWN_RETRY_S = 1.0
# Celery worker processes turn batching on (``runs.tasks``). Elsewhere (the web process, a
# management command, a test calling the worker in-process) each span is stored as it ends, in
# the caller's own connection and transaction, as a test's rollback expects.
_batching = False


def batch_spans() -> None:
    global _batching
    _batching = True


def _ts(ns: int | None) -> datetime:
    return datetime.fromtimestamp((ns or 0) / 1e9, tz=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return [_jsonable(v) for v in value] if isinstance(value, (list, tuple)) else str(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def span_row(span: ReadableSpan) -> Span | None:
    """The row for a span of a run (None for spans outside any run)."""
    attributes = dict(span.attributes or {})
    run_id = attributes.get(semconv.RUN_ID)
    if run_id is None or span.context is None:
        return None
    parent = span.parent.span_id if span.parent else None
    return Span(
        trace_id=f"{span.context.trace_id:032x}",
        span_id=f"{span.context.span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        run_id=int(str(run_id)),
        task_id=_int_or_none(attributes.get(semconv.TASK_ID)),
        name=span.name[:200],
        kind=span.kind.name,
        start=_ts(span.start_time),
        end=_ts(span.end_time),
        attributes={k: _jsonable(v) for k, v in attributes.items()},
        status=span.status.status_code.name,
    )


class DatabaseSpanProcessor(SpanProcessor):
    def __init__(self) -> None:
        self._rows: list[Span] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._failing_since: float | None = None  # the monotonic time connection errors began

    def on_end(self, span: ReadableSpan) -> None:
        try:
            row = span_row(span)
        except Exception:  # telemetry must never break the work it observes
            logger.warning("could not store span %s", span.name, exc_info=True)
            return
        if row is None:
            return
        if not _batching:
            if not self._store([row]):
                logger.warning("could not store span %s: no database connection", row.name)
            return
        with self._lock:
            self._rows.append(row)
            self._ensure_thread()
            if len(self._rows) >= BATCH_ROWS:
                self._wake.set()

    def _ensure_thread(self) -> None:
        # Started on first use, again after a fork (a prefork child inherits no threads), and
        # again should it ever have died.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="span-writer", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(FLUSH_EVERY_S)
            self._wake.clear()
            try:
                self._flush()
            except Exception:
                # The writer must outlive any one flush: a dead writer thread left every later
                # span of the process unstored, silently (it is restarted only after a fork).
                logger.warning("span writer: a flush failed", exc_info=True)

    def _flush(self) -> bool:
        """Store the pending rows; False when they met a connection error and are kept."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return True
        try:
            stored = self._store(rows)
        finally:
            release_connection()
        now = time.monotonic()
        if stored:
            self._failing_since = None
            return True
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since > RETRY_FOR_S:
            logger.warning(
                "could not store %d span(s): no database connection for %.0fs",
                len(rows),
                now - self._failing_since,
            )
            self._failing_since = None
            return True
        with self._lock:  # ahead of the spans that ended meanwhile, in order
            self._rows[:0] = rows
        return False

    @staticmethod
    def _store(rows: list[Span]) -> bool:
        """Store the rows; False (nothing stored) on a connection error, worth another try."""
        try:
            # A span stored twice (a redelivered agent, or a batch tried again) is ignored by
            # the unique key. In a savepoint: a failure here must not spoil a caller's
            # transaction.
            with transaction.atomic():
                Span.objects.bulk_create(rows, ignore_conflicts=True, batch_size=BATCH_ROWS)
            return True
        except IntegrityError:
            pass  # a run deleted since its spans ended: keep every other run's spans below
        except (OperationalError, InterfaceError) as exc:
            # Expected about once a task in a prefork child (see the module's docstring).
            logger.debug("span store: %s, kept for the next flush", exc)
            return False
        except Exception:  # telemetry must never break the work it observes
            logger.warning("could not store %d span(s)", len(rows), exc_info=True)
            return True
        dropped = 0
        for row in rows:
            try:
                with transaction.atomic():
                    Span.objects.bulk_create([row], ignore_conflicts=True)
            except IntegrityError:
                dropped += 1
            except Exception:
                logger.warning("could not store span %s", row.name, exc_info=True)
                return True
        logger.info("dropped %d span(s) of deleted runs", dropped)
        return True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._flush_for(timeout_millis / 1000)

    def _flush_for(self, seconds: float) -> bool:
        """Flush, trying a batch that met a connection error again for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self._flush():
            if time.monotonic() >= deadline:
                return False
            time.sleep(FLUSH_EVERY_S)
        return True

    def shutdown(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._flush_for(SHUTDOWN_RETRY_S)


def release_connection() -> None:
    """Give this thread's PostgreSQL connection back to the pool between batches. Closing can
    fail when Celery's fix-up has closed the pool meanwhile (a prefork child, at every task's
    boundary): the connection is gone either way, and a background thread must not die of it."""
    if connection.vendor != "postgresql":
        return
    try:
        connection.close()
    except Exception as exc:
        logger.debug("closing a pooled connection: %s", exc)
