"""OpenTelemetry set-up: one TracerProvider per process, spans stored for the dashboard and
exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import logging
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_provider: TracerProvider | None = None


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
        provider = TracerProvider(resource=resource)
        from agents.spans import DatabaseSpanProcessor

        provider.add_span_processor(DatabaseSpanProcessor())
        if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        try:
            from opentelemetry.instrumentation.celery import CeleryInstrumentor

            CeleryInstrumentor().instrument(tracer_provider=provider)
        except Exception:  # instrumentation is optional; our own spans still work
            logger.warning("Celery instrumentation unavailable")
        trace.set_tracer_provider(provider)
        _provider = provider
        return provider


def get_tracer() -> trace.Tracer:
    return setup_telemetry().get_tracer("agent-harness")


def shutdown_telemetry() -> None:
    global _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown()
            _provider = None
