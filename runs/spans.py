"""Stores finished spans that belong to a run, so the dashboard's timeline and the audit trail
do not depend on an external trace backend."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from agents import semconv
from runs.models import Span

logger = logging.getLogger(__name__)


def _ts(ns: int | None) -> datetime:
    return datetime.fromtimestamp((ns or 0) / 1e9, tz=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return [_jsonable(v) for v in value] if isinstance(value, (list, tuple)) else str(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


class DatabaseSpanProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        attributes = dict(span.attributes or {})
        run_id = attributes.get(semconv.RUN_ID)
        if run_id is None or span.context is None:
            return
        parent = span.parent.span_id if span.parent else None
        try:
            # One INSERT; a span stored twice (a redelivered agent) is ignored by the unique key.
            Span.objects.bulk_create(
                [
                    Span(
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
                ],
                ignore_conflicts=True,
            )
        except Exception:  # telemetry must never break the work it observes
            logger.warning("could not store span %s", span.name, exc_info=True)
