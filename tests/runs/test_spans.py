"""Spans of a run are stored for the dashboard: in a worker in batches by one writer thread, so
an agent never waits on the database for its span; elsewhere as each span ends."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone
from opentelemetry.sdk.trace import TracerProvider

from agents import semconv
from runs.models import Span
from runs.observability import span_store as spans
from tests.runs.factories import make_run


def _tracer(processor: spans.DatabaseSpanProcessor) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider.get_tracer("test")


@pytest.mark.django_db(transaction=True)
def test_a_worker_stores_spans_in_batches_off_the_agents_thread(
    monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    run = make_run()
    monkeypatch.setattr(spans, "_batching", True)
    processor = spans.DatabaseSpanProcessor()
    tracer = _tracer(processor)

    with django_assert_num_queries(0):  # nothing on this thread's connection
        for i in range(5):
            with tracer.start_as_current_span(f"agent {i}", attributes={semconv.RUN_ID: run.pk}):
                pass
        with tracer.start_as_current_span("outside any run"):
            pass

    processor.shutdown()  # a clean shutdown writes what is still queued
    names = sorted(Span.objects.filter(run=run).values_list("name", flat=True))
    assert names == [f"agent {i}" for i in range(5)]
    assert Span.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_stores_spans_without_being_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = make_run()
    monkeypatch.setattr(spans, "_batching", True)
    processor = spans.DatabaseSpanProcessor()
    tracer = _tracer(processor)
    with tracer.start_as_current_span("agent", attributes={semconv.RUN_ID: run.pk}):
        pass
    deadline = time.monotonic() + 5
    while not Span.objects.filter(run=run).exists():
        assert time.monotonic() < deadline, "the writer thread never stored the span"
        time.sleep(0.05)
    processor.shutdown()
    assert Span.objects.filter(run=run).count() == 1


@pytest.mark.django_db
def test_outside_a_worker_each_span_is_stored_as_it_ends() -> None:
    run = make_run()
    processor = spans.DatabaseSpanProcessor()
    tracer = _tracer(processor)
    with tracer.start_as_current_span("aggregate", attributes={semconv.RUN_ID: run.pk}):
        pass
    # In this thread's own transaction: a test's rollback removes it with the rest.
    assert Span.objects.filter(run=run, name="aggregate").count() == 1


@pytest.mark.django_db(transaction=True)
def test_spans_of_a_deleted_run_do_not_take_the_batch_with_them() -> None:
    kept, deleted = make_run(), make_run()
    rows = [
        Span(
            trace_id="1" * 32,
            span_id=f"{i:016x}",
            run_id=run.pk,
            name=f"agent {i}",
            start=timezone.now(),
            end=timezone.now(),
        )
        for i, run in enumerate([kept, deleted, kept])
    ]
    deleted.delete()  # between the spans' end and the writer's batch
    spans.DatabaseSpanProcessor._store(rows)
    assert sorted(Span.objects.values_list("name", flat=True)) == ["agent 0", "agent 2"]


def _flaky_bulk_create(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[str]:
    """Span.objects.bulk_create fails ``failures`` times as it does in a prefork worker child
    when Celery's Django fix-up closes the process's pool at a task's end."""
    real = Span.objects.bulk_create
    failed: list[str] = []

    def bulk_create(*args: Any, **kwargs: Any) -> Any:
        if len(failed) < failures:
            failed.append("pool closed")
            raise OperationalError("the pool 'pool-3' is closed")
        return real(*args, **kwargs)

    monkeypatch.setattr(Span.objects, "bulk_create", bulk_create)
    return failed


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_meets_a_connection_error_is_stored_at_the_next_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = make_run()
    monkeypatch.setattr(spans, "_batching", True)
    failed = _flaky_bulk_create(monkeypatch, failures=2)
    processor = spans.DatabaseSpanProcessor()
    tracer = _tracer(processor)
    with tracer.start_as_current_span("invoke_agent", attributes={semconv.RUN_ID: run.pk}):
        pass
    deadline = time.monotonic() + 5
    while not Span.objects.filter(run=run).exists():
        assert time.monotonic() < deadline, "the batch was dropped after a connection error"
        time.sleep(0.05)
    with tracer.start_as_current_span("chat", attributes={semconv.RUN_ID: run.pk}):
        pass
    processor.shutdown()
    assert failed == ["pool closed", "pool closed"]
    assert sorted(Span.objects.filter(run=run).values_list("name", flat=True)) == [
        "chat",
        "invoke_agent",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_away_costs_the_batch_once_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run()
    monkeypatch.setattr(spans, "_batching", True)
    monkeypatch.setattr(spans, "RETRY_FOR_S", 0.5)
    failed = _flaky_bulk_create(monkeypatch, failures=10_000)
    processor = spans.DatabaseSpanProcessor()
    tracer = _tracer(processor)
    with tracer.start_as_current_span("invoke_agent", attributes={semconv.RUN_ID: run.pk}):
        pass
    deadline = time.monotonic() + 5
    while "no database connection" not in caplog.text:
        assert time.monotonic() < deadline, "a batch was kept forever"
        time.sleep(0.05)
    tries = len(failed)
    time.sleep(0.5)
    assert len(failed) == tries  # given up: not tried again and again
    assert processor._rows == []
    processor.shutdown()
    assert not Span.objects.filter(run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_outlives_a_flush_that_fails_unexpectedly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flush that raises (closing a connection whose pool Celery closed, in a prefork child)
    once killed the writer thread: every later span of the process was then never stored."""
    run = make_run()
    monkeypatch.setattr(spans, "_batching", True)
    real = spans.DatabaseSpanProcessor._store
    calls: list[int] = []

    def store_once_broken(rows: list[Span]) -> bool:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("the pool was closed under us")
        return real(rows)

    monkeypatch.setattr(spans.DatabaseSpanProcessor, "_store", staticmethod(store_once_broken))
    processor = spans.DatabaseSpanProcessor()
    tracer = _tracer(processor)
    with tracer.start_as_current_span(
        "lost with the broken flush", attributes={semconv.RUN_ID: run.pk}
    ):
        pass
    deadline = time.monotonic() + 5
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with tracer.start_as_current_span("after it", attributes={semconv.RUN_ID: run.pk}):
        pass
    deadline = time.monotonic() + 5
    while not Span.objects.filter(run=run, name="after it").exists():
        assert time.monotonic() < deadline, "the writer thread died with the failed flush"
        time.sleep(0.05)
    processor.shutdown()
