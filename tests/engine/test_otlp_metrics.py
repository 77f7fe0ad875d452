"""Metrics as an OTLP backend receives them: a real receiver, a run of real model calls (the
OpenAI SDK against a local server) across a real Celery worker process; and the gauges that one
worker of a deployment reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness_site import otel_metrics
from harness_site.redis_client import get_redis
from harness_site.telemetry import shutdown_telemetry
from runs.actions import launch_run
from runs.models import Run, Task
from runs.observability import otel_gauges
from tests.engine.helpers import make_target, wait_for_run
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.otlp_receiver import OtlpReceiver, ReceivedPoint
from tests.runs.factories import make_run, task_fields

OPENAI_KEY = "sk-otlp-metrics-KEY-0123456789abcdef"


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    return make_target(tmp_path.resolve(), 2)


@pytest.fixture
def exporting(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Callable[[str], None]]:
    def start(endpoint: str) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("HARNESS_OTEL_METRICS_S", "0.5")
        settings.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint

    yield start
    shutdown_telemetry()


def latest(points: list[ReceivedPoint]) -> dict[tuple[Any, ...], ReceivedPoint]:
    """The last point of each series (cumulative metrics repeat their total at every push)."""
    series: dict[tuple[Any, ...], ReceivedPoint] = {}
    for point in points:
        key = (point.resource.get("service.instance.id"), *sorted(point.attributes.items()))
        series[key] = point
    return series


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_runs_model_calls_and_agents_arrive_as_otlp_metrics(
    celery_worker: Any, target: Path, exporting: Callable[[str], None], monkeypatch: Any
) -> None:
    with OtlpReceiver() as receiver, FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        exporting(receiver.endpoint)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        worker = celery_worker(concurrency=4, name="otlp-metrics")
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            provider="openai",
            model="gpt-4o-mini",
            options={"chunk_files": 1},
            budget_usd="10",
        )
        run = wait_for_run(run.pk, timeout=240)
        assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()

        def tokens() -> dict[str, float]:
            sums: dict[str, float] = {"input": 0.0, "output": 0.0}
            for point in latest(receiver.metric_points("gen_ai.client.token.usage")).values():
                sums[point.attributes["gen_ai.token.type"]] += point.value
            return sums

        deadline = time.monotonic() + 60
        while tokens() != {"input": run.tokens_in, "output": run.tokens_out}:
            instances = {
                p.resource.get("service.instance.id")
                for p in receiver.metric_points("gen_ai.client.token.usage")
            }
            assert time.monotonic() < deadline, (
                f"tokens pushed {tokens()} != the run's {run.tokens_in}/{run.tokens_out} "
                f"from instances {instances}; worker: {worker.tail()}"
            )
            time.sleep(0.3)

    calls = Task.objects.filter(run=run, tokens_in__gt=0)  # each made at least one call
    durations = latest(receiver.metric_points("gen_ai.client.operation.duration"))
    assert sum(p.count for p in durations.values()) >= calls.count() > 0
    for point in durations.values():
        assert point.unit == "s" and point.value > 0
        assert point.attributes["gen_ai.provider.name"] == "openai"
        assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert point.attributes["server.address"] == "127.0.0.1"
        assert "harness.run_id" not in point.attributes  # low cardinality: no ids
    completions = latest(receiver.metric_points("harness.agent_completions"))
    succeeded = sum(p.value for p in completions.values() if p.attributes["status"] == "succeeded")
    assert succeeded == Task.objects.filter(run=run, status=Task.Status.SUCCEEDED).count()
    assert {p.resource["service.component"] for p in completions.values()} == {"worker"}


@pytest.mark.django_db
def test_one_process_at_a_time_reports_the_agent_gauges(settings: Any) -> None:
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:9"
    settings.HARNESS_REDIS_PREFIX = f"gauges-test-{time.monotonic_ns()}:"
    running = make_run(status=Run.Status.RUNNING)
    finished = make_run(status=Run.Status.AWAITING_REVIEW)
    statuses = [Task.Status.QUEUED, Task.Status.QUEUED, Task.Status.RUNNING, Task.Status.PENDING]
    for n, status in enumerate(statuses):
        Task.objects.create(**task_fields(running, scope_label=f"a{n}.py", status=status))
    Task.objects.create(**task_fields(finished, scope_label="b.py", status=Task.Status.RUNNING))
    Run.objects.filter(pk=finished.pk).update(finished_at=finished.created_at)

    (in_flight,) = otel_gauges.in_flight(None)  # type: ignore[arg-type]
    (queued,) = otel_gauges.queued(None)  # type: ignore[arg-type]
    assert (in_flight.value, queued.value) == (3, 2)
    assert in_flight.attributes == {
        "harness.run_id": running.pk,
        "gen_ai.workflow.name": running.playbook,
    }
    # Another process holds the lease: this one reports nothing, until the lease lapses.
    get_redis().set(f"{settings.HARNESS_REDIS_PREFIX}metrics-gauges", "other", px=300)
    assert list(otel_gauges.in_flight(None)) == []  # type: ignore[arg-type]
    time.sleep(0.4)
    assert [o.value for o in otel_gauges.in_flight(None)] == [3]  # type: ignore[arg-type]
    assert otel_metrics.instance_id().encode() == get_redis().get(
        f"{settings.HARNESS_REDIS_PREFIX}metrics-gauges"
    )
