"""What ``/metrics`` exposes (Prometheus text, every name prefixed ``harness_``), read at scrape.

Gauges are counted in the database and Redis when Prometheus asks (a custom collector): runs
by status, agents in flight and queued per active run and in all, the Celery queue's length,
webhook deliveries by status. Counters come from the Redis totals every process adds to
(``runs/observability/counters.py``): agent completions, model calls, tokens and cost by
provider and model, refused budget reservations, webhook failures, and the histogram of the
broadcast lag (commit → the browsers' channel group).

A scrape costs a handful of grouped queries on indexed columns and two Redis round trips,
whatever the number of agents.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from harness_site.redis_client import get_redis
from runs.models import Run, Task, WebhookDelivery
from runs.observability.counters import LAG_BUCKETS, Key, read_counters

_T = Task.Status
IN_FLIGHT = [_T.QUEUED, _T.RUNNING, _T.RETRYING]
# kombu's Redis transport keeps a queue's messages of priority > 0 in lists named after it.
_PRIORITY_SEP = "\x06\x16"

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "agent_completions": ("Agents that finished a try, by how it ended.", ("status",)),
    "model_calls": (
        "Model calls made (replays of stored calls are not counted).",
        ("provider", "model"),
    ),
    "model_tokens": ("Tokens of model calls, by direction.", ("provider", "model", "direction")),
    "model_cost_usd": (
        "Cost in USD of model calls (nominal for heuristic).",
        ("provider", "model"),
    ),
    "budget_reserved_usd": (
        "USD reserved by granted model calls (what they settled at: model_cost_usd).",
        ("provider",),
    ),
    "budget_reservations_refused": (
        "Budget reservations refused: wait (calls in flight hold the budget) or exhausted.",
        ("provider", "outcome"),
    ),
    "webhook_failures": (
        "Failed webhook attempts: retrying (another attempt is due) or failed (given up).",
        ("kind", "outcome"),
    ),
}


class HarnessCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _runs()
        yield from _agents()
        yield _queue_depth()
        yield _webhook_deliveries()
        totals = read_counters()
        for name, (help_text, labels) in COUNTERS.items():
            yield _counter(name, help_text, labels, totals)
        yield _lag(totals)


def _runs() -> Iterator[Metric]:
    gauge = GaugeMetricFamily("harness_runs", "Runs by status.", labels=["status"])
    counts = dict(Run.objects.values_list("status").annotate(n=Count("id")).order_by())
    for status in Run.Status.values:
        gauge.add_metric([status], counts.get(status, 0))
    yield gauge


def _agents() -> Iterator[Metric]:
    """In flight: what a run's max_concurrency caps (queued, running, retrying); queued: sent
    to the workers and not started yet. Per active run, and in all."""
    rows = (
        Task.objects.filter(status__in=IN_FLIGHT, run__finished_at__isnull=True)
        .values_list("run_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    in_flight: dict[int, int] = {}
    queued: dict[int, int] = {}
    for run_id, status, n in rows:
        in_flight[run_id] = in_flight.get(run_id, 0) + n
        if status == _T.QUEUED:
            queued[run_id] = queued.get(run_id, 0) + n
    per_run_in_flight = GaugeMetricFamily(
        "harness_run_agents_in_flight", "Agents in flight per active run.", labels=["run"]
    )
    per_run_queued = GaugeMetricFamily(
        "harness_run_agents_queued", "Agents queued for a worker per active run.", labels=["run"]
    )
    for run_id in sorted(in_flight):
        per_run_in_flight.add_metric([str(run_id)], in_flight[run_id])
        per_run_queued.add_metric([str(run_id)], queued.get(run_id, 0))
    yield per_run_in_flight
    yield per_run_queued
    yield GaugeMetricFamily(
        "harness_agents_in_flight", "Agents in flight in all runs.", value=sum(in_flight.values())
    )
    yield GaugeMetricFamily(
        "harness_agents_queued",
        "Agents queued for a worker in all runs.",
        value=sum(queued.values()),
    )


def _queue_depth() -> Metric:
    """Messages waiting in the Celery queue (Redis lists), not counting those a worker holds."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    names = [queue, *(f"{queue}{_PRIORITY_SEP}{p}" for p in range(1, 10))]
    for name in names:
        pipe.llen(name)
    depth = sum(int(n) for n in pipe.execute())
    gauge = GaugeMetricFamily(
        "harness_queue_depth", "Messages waiting in the Celery queue.", labels=["queue"]
    )
    gauge.add_metric([queue], depth)
    return gauge


def _webhook_deliveries() -> Metric:
    gauge = GaugeMetricFamily(
        "harness_webhook_deliveries", "Webhook deliveries by status.", labels=["status"]
    )
    counts = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("id")).order_by())
    for status in WebhookDelivery.Status.values:
        gauge.add_metric([status], counts.get(status, 0))
    return gauge


def _counter(
    name: str, help_text: str, labels: tuple[str, ...], totals: dict[Key, float]
) -> Metric:
    family = CounterMetricFamily(f"harness_{name}", help_text, labels=list(labels))
    for (counted, label_pairs), value in sorted(totals.items()):
        if counted == name:
            values = dict(label_pairs)
            family.add_metric([values.get(label, "") for label in labels], value)
    return family


def _lag(totals: dict[Key, float]) -> Metric:
    name = "event_broadcast_lag_seconds"
    buckets = [
        (repr(float(bound)), totals.get((f"{name}_bucket", (("le", repr(float(bound))),)), 0.0))
        for bound in LAG_BUCKETS
    ]
    buckets.append(("+Inf", totals.get((f"{name}_bucket", (("le", "+Inf"),)), 0.0)))
    return HistogramMetricFamily(
        f"harness_{name}",
        "Seconds from an event's commit to its broadcast to the browsers' channel group.",
        buckets=buckets,
        sum_value=totals.get((f"{name}_sum", ()), 0.0),
    )


def registry() -> CollectorRegistry:
    """A registry of ours alone: the web process's own default metrics are not the service's."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HarnessCollector())
    return reg
