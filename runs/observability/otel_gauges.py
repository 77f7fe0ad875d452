"""The harness's gauges over OTLP: agents in flight and queued per active run (with its
playbook), read from the database by one worker of the deployment at a time.

Every worker registers the callback; at each export only the process holding a short Redis
lease (``metrics-gauges``, renewed by its holder, taken over when it lapses) reads and reports,
so a backend summing over instances counts each run once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import connection
from django.db.models import Count
from opentelemetry.metrics import CallbackOptions, Observation

from agents import semconv
from harness_site import otel_metrics
from harness_site.redis_client import get_redis
from runs.models import Task

logger = logging.getLogger(__name__)

IN_FLIGHT = [Task.Status.QUEUED, Task.Status.RUNNING, Task.Status.RETRYING]
_registered = False


def _lease_key() -> str:
    return f"{settings.HARNESS_REDIS_PREFIX}metrics-gauges"


def elected() -> bool:
    """True while this process is the one that reports the gauges."""
    me = otel_metrics.instance_id()
    ttl_ms = int(settings.HARNESS_OTEL_METRICS_S * 3 * 1000)
    client = get_redis()
    if client.set(_lease_key(), me, nx=True, px=ttl_ms):
        return True
    holder = client.get(_lease_key())
    if holder is not None and (holder.decode() if isinstance(holder, bytes) else holder) == me:
        client.pexpire(_lease_key(), ttl_ms)
        return True
    return False


def agents_by_run() -> dict[tuple[int, str], dict[str, int]]:
    """(run id, playbook) → agents in flight and queued, for runs not finished."""
    rows = (
        Task.objects.filter(status__in=IN_FLIGHT, run__finished_at__isnull=True)
        .values_list("run_id", "run__playbook", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[int, str], dict[str, int]] = {}
    for run_id, playbook, status, n in rows:
        entry = counts.setdefault((run_id, playbook), {"in_flight": 0, "queued": 0})
        entry["in_flight"] += n
        if status == Task.Status.QUEUED:
            entry["queued"] += n
    return counts


def _observe(kind: str) -> Iterable[Observation]:
    try:
        if not elected():
            return []
        counts = agents_by_run()
    except Exception:  # Redis or the database away: no reading this time, no traceback
        logger.debug("gauges skipped", exc_info=True)
        return []
    finally:
        if not connection.in_atomic_block:  # the reader thread's connection must not linger
            connection.close()
    return [
        Observation(entry[kind], {semconv.RUN_ID: run_id, semconv.WORKFLOW_NAME: playbook})
        for (run_id, playbook), entry in counts.items()
    ]


def in_flight(options: CallbackOptions) -> Iterable[Observation]:
    return _observe("in_flight")


def queued(options: CallbackOptions) -> Iterable[Observation]:
    return _observe("queued")


def register() -> None:
    """Once per process (a worker's start); a no-op reader without an OTLP endpoint."""
    global _registered
    if _registered or not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return
    _registered = True
    meter = otel_metrics.meter()
    meter.create_observable_gauge(
        "harness.agents.in_flight", [in_flight], unit="{agent}", description="Agents in flight."
    )
    meter.create_observable_gauge(
        "harness.agents.queued", [queued], unit="{agent}", description="Agents queued."
    )
