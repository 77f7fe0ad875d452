"""OTLP metrics: the GenAI client metrics and the harness's own, pushed to the same OTLP endpoint
as the traces (the exporter adds ``/v1/metrics``) every ``HARNESS_OTEL_METRICS_S``.

Without an endpoint the global meter provider stays OpenTelemetry's no-op one: recording a
measurement then costs a method call. ``/metrics`` (Prometheus, read at scrape) is separate and
always on; both count the same events.

Counters and histograms are per process: each process pushes its own cumulative totals under its
own ``service.instance.id``, and a backend sums them. Gauges read from the database (agents in
flight and queued) are pushed by one process of the deployment at a time (``elected``), so a
sum over instances does not count them once per worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from harness_site.otlp import WarnOnceMetricExporter, quiet_sdk_loggers

logger = logging.getLogger(__name__)

METER = "agent-harness"
_lock = threading.Lock()
_provider: MeterProvider | None = None
_instruments: dict[tuple[str, str], Any] = {}
_instance: tuple[int, str] = (0, "")


def instance_id() -> str:
    """This process's id among the deployment's (the resource's ``service.instance.id``, and
    what the election of the one process that pushes gauges compares). Per process: a prefork
    pool's children, forked from one parent, must not share one (their series would collide)."""
    global _instance
    if _instance[0] != os.getpid():
        _instance = (os.getpid(), f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    return _instance[1]


def setup_metrics(
    resource: Resource, endpoint: str, interval_s: float, timeout_s: float, shutdown_s: float
) -> None:
    """Idempotent; a no-op without an endpoint. Call after fork, like the tracer provider. At
    exit the last push gets at most ``shutdown_s`` (the SDK's own exit hook would wait up to
    30 s for a receiver that is down)."""
    global _provider
    # OTEL_METRICS_EXPORTER=none: the SDK's own switch, for a receiver that takes traces only.
    if not endpoint or os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return
    with _lock:
        if _provider is not None:
            return
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        quiet_sdk_loggers()
        reader = PeriodicExportingMetricReader(
            WarnOnceMetricExporter(OTLPMetricExporter(timeout=timeout_s), endpoint),
            export_interval_millis=interval_s * 1000,
            export_timeout_millis=timeout_s * 1000,
        )
        resource = resource.merge(Resource.create({"service.instance.id": instance_id()}))
        _provider = MeterProvider(
            resource=resource, metric_readers=[reader], shutdown_on_exit=False
        )
        metrics.set_meter_provider(_provider)
        atexit.register(shutdown_metrics, shutdown_s)


def meter() -> metrics.Meter:
    return metrics.get_meter(METER)


def _instrument(kind: str, name: str, make: Any) -> Any:
    key = (kind, name)
    found = _instruments.get(key)
    if found is None:
        with _lock:
            found = _instruments.setdefault(key, make())
    return found


def add(name: str, amount: float, labels: dict[str, str]) -> None:
    """Add to the counter ``name`` (a ``/metrics`` counter's twin: ``harness.{name}``)."""
    _instrument("counter", name, lambda: meter().create_counter(f"harness.{name}")).add(
        amount, labels
    )


def record(name: str, value: float, labels: dict[str, str], buckets: Sequence[float]) -> None:
    """One observation of the histogram ``harness.{name}`` (seconds)."""
    _instrument(
        "histogram",
        name,
        lambda: meter().create_histogram(
            f"harness.{name}", unit="s", explicit_bucket_boundaries_advisory=list(buckets)
        ),
    ).record(value, labels)


def force_flush() -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis=5_000)


def shutdown_metrics(timeout_s: float) -> None:
    global _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown(timeout_millis=timeout_s * 1000)
            _provider = None
            _instruments.clear()
