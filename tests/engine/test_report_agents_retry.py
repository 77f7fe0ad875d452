"""The report's own agents across an operator's retry, in this process (agents run by
``worker.execute`` as a worker would, against the local OpenAI-compatible server): new findings
get a new summary and critique, never the stale ones."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.actions import enqueue, launch_run
from runs.actions.control import retry_failed
from runs.actions.planning import plan_run
from runs.actions.report import aggregate
from runs.models import Run, Step, Task
from runs.models.task import TRY_SPAN
from runs.run_budget import budget_for
from tests.engine.helpers import make_target
from tests.engine.test_budget_extension import _drain, _now
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "sk-report-retry-KEY-0123456789abcdef"


def _finish(run: Run) -> None:
    """Drain until nothing is pending: dispatch creates each report agent only once every
    earlier agent is done, so one drain stops where the next agent appears."""
    for _ in range(5):
        _drain(run)
        if not Task.objects.filter(run=run, status=Task.Status.PENDING).exists():
            break
    aggregate(run.pk)


def test_a_retry_after_the_report_gets_a_fresh_summary_and_critique(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    _now(monkeypatch)
    server = FakeOpenAIServer(api_key=KEY)
    with server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        # The first agent's answer and its repair both break the schema: it fails for good.
        server.plan = ["invalid", "invalid"]
        run = launch_run(
            user=operator,
            playbook="codebase-audit",
            target_path=str(make_target(tmp_path.resolve(), 2)),
            provider="openai",
            model="gpt-4o-mini",
            max_concurrency=1,
            options={"chunk_files": 1},
            budget_usd="5",
        )
        plan_run(run.pk)
        _finish(run)
        run.refresh_from_db()
        assert run.status == Run.Status.AWAITING_REVIEW
        first = Task.objects.get(run=run, step="report")
        failed_pk = Task.objects.get(run=run, status=Task.Status.FAILED).pk
        # A failed agent's calls were paid for: they are in the run's cost from the start.
        assert run.cost_usd == sum(
            (s.cost_usd for s in Step.objects.filter(task__run=run, kind="chat")), Decimal(0)
        )
        v1 = run.reports.get()
        assert v1.params["synthesis_input"]["agent"] == first.pk

        assert retry_failed(run, operator) == 1
        _finish(run)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    reports = list(Task.objects.filter(run=run, step="report").order_by("id"))
    critiques = list(Task.objects.filter(run=run, step="critique").order_by("id"))
    assert len(reports) == 2 and len(critiques) == 2
    assert all(t.status == Task.Status.SUCCEEDED for t in reports + critiques)
    latest = run.reports.order_by("-version").first()
    assert latest is not None and latest.version == 2
    # The new version reads the new agents, which saw the retried agent's findings too.
    assert latest.params["synthesis_input"]["agent"] == reports[1].pk
    assert (
        latest.params["synthesis_input"]["raw_findings"]
        > v1.params["synthesis_input"]["raw_findings"]
    )
    assert f"agent #{critiques[1].pk}" in latest.html

    # The retried agent called the model again (its first try's calls kept, moved out of the
    # way), and every call of both tries is paid once: in the agent, the run and the budget.
    retried = Task.objects.get(run=run, pk=failed_pk)
    indexes = sorted(Step.objects.filter(task=retried).values_list("index", flat=True))
    assert [i for i in indexes if i >= TRY_SPAN] == [TRY_SPAN, TRY_SPAN + 1]
    assert [i for i in indexes if i < TRY_SPAN], indexes
    steps = Step.objects.filter(task__run=run, kind="chat")
    assert retried.cost_usd == sum((s.cost_usd for s in steps.filter(task=retried)), Decimal(0))
    total = sum((s.cost_usd for s in steps), Decimal(0))
    assert run.cost_usd == total
    assert budget_for(run).state().spent_usd == pytest.approx(float(total), abs=1e-9)
