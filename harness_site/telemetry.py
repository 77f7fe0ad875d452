"""OpenTelemetry set-up: one TracerProvider per process, spans stored for the dashboard and
exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, TraceFlags

from harness_site.otel_metrics import setup_metrics, shutdown_metrics
from harness_site.otlp import EXPORT_TIMEOUT_S, BoundedExportProcessor

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_provider: TracerProvider | None = None
_forced = threading.local()
# Processors the apps add to every process's provider (the runs app stores spans for the
# dashboard); registered from AppConfig.ready, so this module never imports an app.
_extra_processors: list[type[SpanProcessor]] = []


# OpenInference's span kinds (what Phoenix draws a span as) from the GenAI operation name; a
# span with none (launch, plan, dispatch, aggregate, review) is a step of the workflow: a chain.
SPAN_KINDS = {
    "invoke_workflow": "CHAIN",
    "invoke_agent": "AGENT",
    "chat": "LLM",
    "text_completion": "LLM",
    "execute_tool": "TOOL",
    "embeddings": "EMBEDDING",
}


class SpanKinds(SpanProcessor):
    """Names each span's kind for OpenInference readers, beside the GenAI conventions' names
    (Phoenix shows every span without it as "unknown")."""

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        operation = (span.attributes or {}).get("gen_ai.operation.name")
        span.set_attribute("openinference.span.kind", SPAN_KINDS.get(str(operation), "CHAIN"))


def register_span_processor(processor: type[SpanProcessor]) -> None:
    """Add a processor class to every provider set up from now on (idempotent)."""
    if processor not in _extra_processors:
        _extra_processors.append(processor)


class RunIdGenerator(RandomIdGenerator):
    """Random ids, except while ``forced_ids`` is active: a run's root span is emitted when the
    run ends but must carry the ids its agents' spans already point at."""

    def generate_span_id(self) -> int:
        forced = getattr(_forced, "span_id", None)
        return forced if forced is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = getattr(_forced, "trace_id", None)
        return forced if forced is not None else super().generate_trace_id()


def parent_context(trace_id: str, span_id: str) -> Context:
    """A context whose current span is (trace_id, span_id): spans started in it join the run's
    trace as children of that span, whichever process or machine they run in."""
    span_context = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def emit_root_span(
    name: str,
    trace_id: str,
    span_id: str,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    status: Status | None = None,
    parent: Context | None = None,
    links: Sequence[trace.Link] = (),
) -> None:
    """Emit a span of the run with pre-assigned ids: its workflow span (no parent), or a later
    part of it whose id must be known in advance so it is emitted once."""
    tracer = get_tracer()
    _forced.trace_id, _forced.span_id = int(trace_id, 16), int(span_id, 16)
    try:
        span = tracer.start_span(
            name,
            context=parent or Context(),
            start_time=start_ns,
            attributes=attributes,
            links=links,
        )
    finally:
        _forced.trace_id = _forced.span_id = None
    if status is not None:
        span.set_status(status)
    span.end(end_time=end_ns)


def setup_telemetry(component: str = "web") -> TracerProvider:
    """Idempotent. Call after fork (Celery's worker_process_init) so exporter threads live in
    the process that uses them."""
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        from django.conf import settings

        resource = Resource.create(
            {"service.name": settings.OTEL_SERVICE_NAME, "service.component": component}
        )
        # Before the tracer provider: exit hooks run last-registered first, so at exit the
        # spans' last flush comes first and the metrics' after it.
        setup_metrics(
            resource,
            settings.OTEL_EXPORTER_OTLP_ENDPOINT,
            settings.HARNESS_OTEL_METRICS_S,
            EXPORT_TIMEOUT_S,
            settings.HARNESS_OTEL_SHUTDOWN_S,
        )
        provider = TracerProvider(resource=resource, id_generator=RunIdGenerator())
        provider.add_span_processor(SpanKinds())
        for processor in _extra_processors:
            provider.add_span_processor(processor())
        if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS itself.
            provider.add_span_processor(
                BoundedExportProcessor(
                    OTLPSpanExporter(timeout=EXPORT_TIMEOUT_S),
                    endpoint=settings.OTEL_EXPORTER_OTLP_ENDPOINT,
                    shutdown_s=settings.HARNESS_OTEL_SHUTDOWN_S,
                )
            )
            if settings.HARNESS_OTEL_CELERY:
                _instrument_celery(provider)
        trace.set_tracer_provider(provider)
        _provider = provider
        return provider


def _instrument_celery(provider: TracerProvider) -> None:
    # Celery's publish/run spans join the run's trace: the harness publishes inside a span of
    # the run (or with its context attached), and the instrumentation carries that context in
    # the message headers to the worker's side.
    try:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    except Exception:  # instrumentation is optional; our own spans still work
        logger.warning("Celery instrumentation unavailable")


def get_tracer() -> trace.Tracer:
    return setup_telemetry().get_tracer("agent-harness")


def shutdown_telemetry() -> None:
    global _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown()
            _provider = None
    from django.conf import settings

    shutdown_metrics(settings.HARNESS_OTEL_SHUTDOWN_S)
