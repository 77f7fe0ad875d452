"""Helpers for engine tests: generated targets and waiting for runs to finish."""

from __future__ import annotations

import time

from harness_site.testing.targets import VULNERABLE_MODULE, make_target
from runs.models import Run, Span
from runs.observability.span_store import FLUSH_EVERY_S

__all__ = ["VULNERABLE_MODULE", "make_target", "wait_for_run", "wait_for_spans"]


def wait_for_run(run_id: int, timeout: float = 180) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.is_finished:
            return run
        time.sleep(0.25)
    run = Run.objects.get(pk=run_id)
    raise AssertionError(
        f"run {run_id} did not finish in {timeout}s: status={run.status} "
        f"done={run.tasks_done} failed={run.tasks_failed} skipped={run.tasks_skipped} "
        f"total={run.tasks_total}"
    )


def wait_for_spans(run: Run, timeout: float = 15) -> None:
    """Until the run's spans are all stored: its root span (emitted last, after the report) is
    there and the count holds still for two of the workers' span-flush periods."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        count = Span.objects.filter(run=run).count()
        if count == last and Span.objects.filter(run=run, span_id=run.root_span_id).exists():
            return
        last = count
        time.sleep(2 * FLUSH_EVERY_S)
    raise AssertionError(f"the spans of run {run.pk} were still being written after {timeout}s")
