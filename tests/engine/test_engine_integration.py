"""The run engine end to end: real Celery worker processes, real Redis, the test database."""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count, Sum

from runs.actions import launch_run
from runs.models import Event, Finding, Report, Run, Span, Step, Task
from runs.pages.summary import run_summary
from runs.run_budget import budget_for
from tests.engine.helpers import make_target, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def target_root(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    return tmp_path.resolve()


def assert_event_log_is_gap_free(run: Run) -> None:
    seqs = list(Event.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert run.last_seq == len(seqs)


def test_two_hundred_agents_never_exceed_max_concurrency(celery_worker, target_root):
    celery_worker(concurrency=12, name="wide")
    target = make_target(target_root, 67)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=8,
        latency_ms=30,
        options={"chunk_files": 1},
        budget_usd="100",
    )
    run = wait_for_run(run.pk, timeout=300)
    summary = run_summary(run)
    assert summary["agents"]["total"] == 201
    assert summary["agents"]["succeeded"] == 201
    assert 1 < summary["max_in_flight"] <= 8
    assert run.status == Run.Status.AWAITING_REVIEW
    assert Report.objects.filter(run=run).count() == 1
    assert_event_log_is_gap_free(run)


def test_budget_is_never_exceeded_by_parallel_workers(celery_worker, target_root):
    celery_worker(concurrency=8, name="budget")
    target = make_target(target_root, 17)  # 17 files x 3 lenses = 51 agents
    # An undisturbed run prices all 51 agents; a budget of 25 agents' actual cost covers about
    # half of them (tests/engine/test_budget_use.py checks how much of it is used).
    probe = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=1,
        options={"chunk_files": 1},
        budget_usd="100",
    )
    probe = wait_for_run(probe.pk)
    assert probe.status == Run.Status.AWAITING_REVIEW
    budget = (probe.cost_usd / 51 * 25).quantize(Decimal("0.000001"))

    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=12,
        latency_ms=50,
        options={"chunk_files": 1},
        budget_usd=budget,
    )
    run = wait_for_run(run.pk)
    assert run.status == Run.Status.BUDGET_EXHAUSTED
    assert run.cost_usd <= budget
    state = budget_for(run).state()
    assert state.spent_usd <= float(budget) + 1e-9
    counts = dict(Task.objects.filter(run=run).values_list("status").annotate(n=Count("id")))
    assert counts.get("succeeded", 0) >= 5
    assert counts.get("skipped", 0) >= 10
    assert set(counts) <= {"succeeded", "skipped"}
    # Every settled step is in the run's cost, and the rest were skipped with the reason.
    steps_cost = Step.objects.filter(task__run=run).aggregate(c=Sum("cost_usd"))["c"]
    assert steps_cost == run.cost_usd
    skipped = Task.objects.filter(run=run, status="skipped")
    assert all("budget" in t.error for t in skipped)
    report = Report.objects.get(run=run)
    assert "budget ran out" in report.source_text
    assert Event.objects.filter(run=run, type="budget.exhausted").count() == 1


def test_dependency_runs_strictly_after_what_it_depends_on(celery_worker, settings):
    celery_worker(concurrency=4, name="deps")
    run = launch_run(
        user=None,
        playbook="document-synthesis",
        target_path=str(settings.BASE_DIR / "samples" / "corpus"),
        max_concurrency=4,
        latency_ms=40,
    )
    run = wait_for_run(run.pk)
    assert run.status == Run.Status.AWAITING_REVIEW
    synth = Task.objects.get(run=run, step="synthesize")
    readers = list(Task.objects.filter(run=run, step="read"))
    assert len(readers) >= 5
    assert synth.status == Task.Status.SUCCEEDED
    assert all(r.finished_at <= synth.started_at for r in readers)
    assert "Shared theme" in " ".join(
        Finding.objects.filter(task=synth).values_list("title", flat=True)
    )


def test_agents_split_big_scopes_within_the_depth_limit(celery_worker, target_root):
    celery_worker(concurrency=4, name="spawn")
    target = make_target(target_root, 24)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=6,
        max_depth=1,
        options={"chunk_files": 24, "chunk_bytes": 10**7, "agent_max_files": 3},
    )
    run = wait_for_run(run.pk)
    tasks = list(Task.objects.filter(run=run))
    assert max(t.depth for t in tasks) == 1  # children at depth 1, none deeper
    roots = [t for t in tasks if t.parent_id is None]
    children = [t for t in tasks if t.parent_id is not None]
    assert len(roots) == 3 and len(children) == 6  # each root split its scope in two
    for child in children:
        assert child.why and "part" in child.why
    # At the depth limit the children are not allowed to split again: they cover their whole
    # scope themselves, so every file is still analysed.
    assert Finding.objects.filter(run=run).values("path").distinct().count() == 24
    assert Event.objects.filter(run=run, type="spawn.requested").count() == 6
    # One run, one trace: the workflow span at the root, each agent under its parent agent.
    # The root span is written just after the run finishes (after the report commits).
    deadline = time.monotonic() + 15
    while not Span.objects.filter(run=run, span_id=run.root_span_id).exists():
        assert time.monotonic() < deadline, "the run's root span was never stored"
        time.sleep(0.1)
    spans = {s.span_id: s for s in Span.objects.filter(run=run)}
    assert {s.trace_id for s in spans.values()} == {run.trace_id}
    root = spans[run.root_span_id]
    assert root.name == f"invoke_workflow codebase-audit #{run.pk}" and not root.parent_span_id
    by_task = {t.pk: t for t in tasks}
    for span in spans.values():
        if span.name.startswith("invoke_agent"):
            task = by_task[span.task_id]
            expected = by_task[task.parent_id].span_id if task.parent_id else run.root_span_id
            assert span.parent_span_id == expected
            assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
            assert span.attributes["gen_ai.agent.name"] == task.role
            assert span.attributes["gen_ai.agent.id"] == str(task.pk)
            # The offline analyzer's nominal price and tokens under our names only: a tool
            # that adds up gen_ai.usage.* must not count them as a model's.
            assert span.attributes["harness.cost_usd"] == pytest.approx(
                float(task.cost_usd), abs=1e-5
            )
            assert span.attributes["harness.nominal.input_tokens"] == task.tokens_in
            assert span.attributes["harness.offline"] is True
            assert "offline static analysis" in span.attributes["metadata"]
            assert not [k for k in span.attributes if k.startswith("gen_ai.usage.")]
    assert root.attributes["harness.offline"] is True
    assert root.attributes["harness.nominal.input_tokens"] == run.tokens_in
    assert not [k for k in root.attributes if k.startswith("gen_ai.usage.")]
    assert_event_log_is_gap_free(run)


def test_killed_worker_loses_nothing_and_pays_nothing_twice(celery_worker, target_root):
    # Short recovery clocks so the test takes seconds: redelivery after 6 s, a silent agent is
    # presumed dead after 3 s, a queued one is re-sent after 4 s, watchdog every second.
    env = {
        "CELERY_VISIBILITY_TIMEOUT": "6",
        "HARNESS_AGENT_LEASE_S": "3",
        "HARNESS_REQUEUE_AFTER_S": "4",
        "HARNESS_WATCHDOG_S": "1",
    }
    first = celery_worker(concurrency=4, name="doomed", env=env)
    target = make_target(target_root, 12)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=4,
        latency_ms=400,
        options={"chunk_files": 1},
    )
    # Let it get going, then kill the whole worker (main process and children) mid-run.
    deadline = time.monotonic() + 60
    while (
        Task.objects.filter(run=run, status="succeeded").count() < 4
        or not Task.objects.filter(run=run, status="running").exists()
    ):
        assert time.monotonic() < deadline, "run did not get going"
        time.sleep(0.05)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    celery_worker(concurrency=4, name="rescuer", env=env)
    run = wait_for_run(run.pk, timeout=240)

    assert run.status == Run.Status.AWAITING_REVIEW
    tasks = Task.objects.filter(run=run)
    assert tasks.count() == 36
    assert set(tasks.values_list("status", flat=True)) == {"succeeded"}
    assert tasks.filter(attempts__gt=1).exists()  # someone really was interrupted
    # No step stored twice, every stored step paid exactly once, totals consistent everywhere.
    assert Step.objects.filter(task__run=run).count() == 36
    steps_cost = Step.objects.filter(task__run=run).aggregate(c=Sum("cost_usd"))["c"]
    assert run.cost_usd == steps_cost
    assert tasks.aggregate(c=Sum("cost_usd"))["c"] == steps_cost
    # Redis counts micro-dollars rounded up per settle: at most 1 µ$ per step of difference, far
    # below the ~700 µ$ a step paid twice would add.
    spent = budget_for(run).state().spent_usd
    assert 0 <= spent - float(steps_cost) <= 36e-6
    # Same findings as an undisturbed analysis of the same files: none lost, none duplicated.
    per_file = Finding.objects.filter(run=run).values("path").annotate(n=Count("id"))
    counts = {row["n"] for row in per_file}
    assert len(per_file) == 12 and len(counts) == 1
    assert run.findings_count == Finding.objects.filter(run=run).count()
    assert_event_log_is_gap_free(run)


def test_a_threads_worker_keeps_many_agents_in_flight_under_the_cap(celery_worker, target_root):
    # The default pool: many agents per process, still never more than the run's cap.
    celery_worker(concurrency=40, name="threads", pool="threads")
    target = make_target(target_root, 20)  # 20 files x 3 lenses = 60 agents
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=12,
        latency_ms=400,
        options={"chunk_files": 1},
        budget_usd="100",
    )
    run = wait_for_run(run.pk, timeout=240)
    summary = run_summary(run)
    assert run.status == Run.Status.AWAITING_REVIEW
    assert summary["agents"]["succeeded"] == 60
    # More than a process-per-agent worker of this size could ever hold, never above the cap.
    assert 4 < summary["max_in_flight"] <= 12
    steps_cost = Step.objects.filter(task__run=run).aggregate(c=Sum("cost_usd"))["c"]
    assert steps_cost == run.cost_usd
    # Redis rounds each call up to the micro-dollar: at most 1 µ$ per stored step apart.
    steps = Step.objects.filter(task__run=run).count()
    spent = budget_for(run).state().spent_usd
    assert spent == pytest.approx(float(run.cost_usd), abs=1e-6 * steps)
    assert_event_log_is_gap_free(run)
