"""Tiered models end to end: real Celery worker processes, real Redis, and for the language
model tiers the real ``openai`` SDK over real HTTP to the local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.aggregation.exports import export
from runs.actions import launch_run
from runs.models import Event, Finding, Run, Span, Task
from runs.pages.report import report_document
from runs.pages.summary import run_summary
from tests.engine.helpers import make_target, wait_for_run, wait_for_spans
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
OPENAI_KEY = "sk-tiers-openai-KEY-0123456789abcdef"


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    return make_target(tmp_path.resolve(), 2)


def test_escalation_runs_a_depth_agent_on_the_depth_model_and_the_report_names_its_tier(
    celery_worker: Any, target: Path, monkeypatch: pytest.MonkeyPatch, viewer_client: Client
) -> None:
    with FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        worker = celery_worker(concurrency=4, name="tiers-openai")
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            provider="openai",
            model="gpt-4o-mini",
            options={"chunk_files": 1, "escalate_severity": "high", "depth_model": "gpt-4o"},
            budget_usd="10",
        )
        run = wait_for_run(run.pk, timeout=240)
        assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
        bodies = [r.body for r in server.model_requests() if isinstance(r.body, dict)]

    # The brain reports eval( as high: each breadth agent that saw it escalated it.
    depth = list(Task.objects.filter(run=run, step="verify"))
    assert depth, "no depth agent was created"
    for agent in depth:
        assert agent.role == "verifier" and agent.model == "gpt-4o"
        assert agent.status == Task.Status.SUCCEEDED
        assert agent.parent is not None and agent.parent.role == "auditor"
        assert agent.parent.model == "gpt-4o-mini" and agent.depth == agent.parent.depth + 1
        assert agent.tokens_in > 0 and agent.cost_usd > 0
    # The depth calls went to the depth model with the items and their lines, asking verdicts.
    verify_calls = [b for b in bodies if "STEP: verify" in json.dumps(b.get("messages", [])) and b]
    assert len(verify_calls) >= len(depth)
    assert {b["model"] for b in verify_calls} == {"gpt-4o"}
    assert all(b["model"] == "gpt-4o-mini" for b in bodies if b not in verify_calls)
    assert all("tools" not in b for b in verify_calls)

    escalated = Finding.objects.filter(run=run, severity__in=["high", "critical"])
    assert escalated.exists()
    for finding in escalated:
        assert finding.tier == "depth" and finding.verdict == "confirmed", finding.verdict_reason
        assert finding.verified_by is not None and finding.verified_by.model == "gpt-4o"
    assert not Finding.objects.filter(run=run, severity="medium").exclude(tier="breadth").exists()
    assert Event.objects.filter(run=run, type="tier.escalated").count() == len(depth)
    verified = Event.objects.filter(run=run, type="tier.verified")
    assert sum(e.payload["confirmed"] for e in verified) == escalated.count()

    report = run.reports.get()
    doc = report_document(run, report)
    tiers = {c["title"]: c["confirmed_by"] for c in doc["clusters"] if c["kept"]}
    assert "depth" in tiers.values() and "breadth" in tiers.values()
    markdown = export(doc, "md")
    assert "Confirmed by: depth tier (confirmed, gpt\\-4o): the quote is in the code" in markdown
    page = viewer_client.get(reverse("runs:report", args=[run.pk, report.version]))
    assert "confirmed by the depth tier" in page.content.decode()
    detail = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert 'id="tier-costs"' in detail and 'data-tier="depth"' in detail
    tiers_summary = {row["tier"]: row for row in run_summary(run)["tiers"]}
    assert tiers_summary["depth"]["agents"] == len(depth)
    assert tiers_summary["depth"]["models"] == ["gpt-4o"]
    assert tiers_summary["breadth"]["models"] == ["gpt-4o-mini"]
    assert tiers_summary["depth"]["tokens_in"] == sum(t.tokens_in for t in depth)
    # Each depth agent has its own span, a child of its breadth agent's.
    wait_for_spans(run)
    for agent in depth:
        span = Span.objects.get(run=run, task=agent, name="invoke_agent verifier")
        assert agent.parent is not None and span.parent_span_id == agent.parent.span_id


def test_offline_depth_agents_re_analyse_the_whole_file_and_their_verdicts_reach_the_report(
    celery_worker: Any, target: Path
) -> None:
    celery_worker(concurrency=4, name="tiers-offline")
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        options={"chunk_files": 1, "escalate_severity": "high", "escalate_confidence": 0.5},
    )
    run = wait_for_run(run.pk, timeout=240)
    assert run.status == Run.Status.AWAITING_REVIEW
    depth = Task.objects.filter(run=run, step="verify")
    assert depth.exists() and set(depth.values_list("status", flat=True)) == {"succeeded"}
    assert all(t.parent_id is not None for t in depth)
    escalated = Finding.objects.filter(run=run).exclude(verdict="")
    assert escalated.exists()
    # The whole-file pass gives a verdict on every item, each with the rule it found there.
    for finding in escalated:
        assert finding.tier == "depth" and finding.verdict in ("confirmed", "corrected")
        assert "The whole-file" in finding.verdict_reason
    assert not Finding.objects.filter(run=run, verdict="", severity__in=["high", "critical"])
