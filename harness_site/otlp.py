"""OTLP export that never delays the product.

Spans go out from OpenTelemetry's background batch thread. At a process's exit the last spans
get at most ``HARNESS_OTEL_SHUTDOWN_S`` (the SDK would wait up to 30 s, plus the exporter's
retries, for a receiver that is down). Spans that could not be delivered are reported as one
warning line per run, instead of the SDK's retry chatter.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

# The attribute that names a span's run (agents.semconv.RUN_ID; this layer imports no app).
RUN_ATTRIBUTE = "harness.run_id"
# The exporter's per-batch deadline, retries included, while the process lives.
EXPORT_TIMEOUT_S = 10.0
# Their warnings repeat for every batch and retry ("Transient error … retrying in 1.00s"); ours
# says once per run what was lost. Each exporter logs under its own module's logger (the trace
# and metric exporters pass theirs to the shared HTTP client), so the parent of them all.
_SDK_LOGGERS = ("opentelemetry.exporter.otlp", "opentelemetry.sdk._shared_internal")


def quiet_sdk_loggers() -> None:
    """Silence the SDK's per-batch export chatter (spans and metrics alike)."""
    for name in _SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _run_of(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get(RUN_ATTRIBUTE, "-"))


class _Ledger:
    """Spans handed to the exporter and not yet delivered, by run; runs already warned about."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.pending: Counter[str] = Counter()
        self.warned: set[str] = set()
        self.lock = threading.Lock()

    def settle(self, runs: Counter[str], delivered: bool) -> None:
        with self.lock:
            self.pending.subtract(runs)
            lost = [] if delivered else [r for r in runs if r not in self.warned]
            self.warned.update(lost)
        for run in lost:
            self.warn(run, runs[run])

    def warn(self, run: str, count: int) -> None:
        label = f"run {run}" if run != "-" else "no run"
        logger.warning(
            "%d span(s) of %s could not be exported to %s", count, label, self.endpoint or "OTLP"
        )


class _LedgerExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, ledger: _Ledger) -> None:
        self.inner = inner
        self.ledger = ledger

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        runs = Counter(_run_of(span) for span in spans)
        try:
            result = self.inner.export(spans)
        except Exception:  # telemetry must never break the work it observes
            result = SpanExportResult.FAILURE
        self.ledger.settle(runs, result == SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class BoundedExportProcessor(BatchSpanProcessor):
    """A batch processor whose shutdown takes at most ``shutdown_s``."""

    def __init__(self, exporter: SpanExporter, *, endpoint: str, shutdown_s: float) -> None:
        self._ledger = _Ledger(endpoint)
        self._shutdown_s = shutdown_s
        super().__init__(_LedgerExporter(exporter, self._ledger))
        quiet_sdk_loggers()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        with self._ledger.lock:
            self._ledger.pending[_run_of(span)] += 1
        super().on_end(span)

    def shutdown(self) -> None:
        # The SDK joins its thread for this long, then shuts the exporter (aborting its retry
        # waits); a request still in flight is left to its daemon thread.
        self._batch_processor.shutdown(timeout_millis=int(self._shutdown_s * 1000))
        with self._ledger.lock:
            lost = {r: n for r, n in self._ledger.pending.items() if n > 0}
            self._ledger.pending.clear()
            fresh = [r for r in lost if r not in self._ledger.warned]
            self._ledger.warned.update(fresh)
        for run in fresh:
            self._ledger.warn(run, lost[run])


class WarnOnceMetricExporter(MetricExporter):
    """A metric exporter that says once per process that metrics are not getting through,
    instead of the SDK's error line at every push (every 15 s, forever). A receiver that takes
    traces only (Phoenix answers 405 at /v1/metrics) is told apart from one that is down."""

    def __init__(self, inner: MetricExporter, endpoint: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.endpoint = endpoint
        self.warned = False

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:  # telemetry must never break the work it observes
            result = MetricExportResult.FAILURE
        if result != MetricExportResult.SUCCESS and not self.warned:
            self.warned = True
            logger.warning(
                "Metrics could not be exported to %s (not logged again by this process); a "
                "receiver that takes traces only (Phoenix) refuses them: set "
                "OTEL_METRICS_EXPORTER=none to stop pushing them",
                self.endpoint or "OTLP",
            )
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
