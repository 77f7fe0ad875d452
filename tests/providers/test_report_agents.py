"""The report's own agents through the local OpenAI-compatible server: every playbook, a real
Celery worker process, the real SDK over real HTTP. The synthesis and critic agents are real
Tasks with their own model calls, spans, budget reservations and costs; the synthesis agent
reads condensed clusters, never the raw findings."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runs.actions import launch_run
from runs.models import Run, Span, Step, Task
from runs.run_budget import budget_for
from tests.engine.helpers import make_target, wait_for_run
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
KEY = "sk-report-agents-KEY-0123456789abcdef"
DOC = (
    "# Release notes {n}\n\nThe admin password is stored in plain text. TODO: rotate it.\n"
    "Set SECRET in the environment before eval( of the config.\n"
)


@pytest.fixture
def targets(tmp_path: Path, settings: Any) -> dict[str, Path]:
    root = tmp_path.resolve()
    settings.HARNESS_TARGET_ROOTS = [root]
    docs = root / "docs"
    docs.mkdir()
    for n in range(3):
        (docs / f"notes{n}.md").write_text(DOC.replace("{n}", str(n)) * (n + 1))
    return {"code": make_target(root, 3), "documents": docs}


PLAYBOOKS: dict[str, tuple[str, dict[str, Any]]] = {
    "codebase-audit": ("code", {"chunk_files": 1}),
    "ensemble": ("code", {"k": 2, "sample_fraction": 1.0}),
    "multi-perspective-review": ("documents", {}),
    "document-synthesis": ("documents", {}),
}


def _requests_for(server: FakeOpenAIServer, step: str) -> list[dict[str, Any]]:
    return [
        r.body
        for r in server.requests
        if isinstance(r.body, dict)
        and any(f"STEP: {step}" in str(m.get("content")) for m in r.body.get("messages", []))
    ]


def test_every_playbook_gets_a_model_written_summary_and_critique(
    celery_worker: Any, targets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeOpenAIServer(api_key=KEY)
    with server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        worker = celery_worker(concurrency=4, name="report-agents")
        runs = {
            name: launch_run(
                user=None,
                playbook=name,
                target_path=str(targets[kind]),
                provider="openai",
                model="gpt-4o-mini",
                options=options,
                budget_usd="10",
            )
            for name, (kind, options) in PLAYBOOKS.items()
        }
        finished = {name: wait_for_run(run.pk, timeout=300) for name, run in runs.items()}
        report_requests = _requests_for(server, "report")
        critique_requests = _requests_for(server, "critique")

    for name, run in finished.items():
        assert run.status == Run.Status.AWAITING_REVIEW, (name, worker.tail())
        agents = {t.step: t for t in Task.objects.filter(run=run, step__in=["report", "critique"])}
        # Document synthesis already has a synthesis agent reading the readers' summaries: it
        # gets no second one, only the critic.
        expected = {"critique"} if name == "document-synthesis" else {"report", "critique"}
        assert set(agents) == expected, name
        for task in agents.values():
            assert task.status == Task.Status.SUCCEEDED, (name, task.step, task.error)
            assert task.group == "report agents" and task.parent_id is None
            # A real agent: its own priced model call, span and budget settlement.
            chats = list(Step.objects.filter(task=task, kind="chat"))
            assert len(chats) == 1 and chats[0].cost_usd > 0, (name, task.step)
            assert task.cost_usd == chats[0].cost_usd and task.tokens_in > 0
            assert Span.objects.filter(run=run, span_id=task.span_id).exists()
            assert Span.objects.filter(
                run=run, name="chat gpt-4o-mini", parent_span_id=task.span_id
            )
        step_total = sum((s.cost_usd for s in Step.objects.filter(task__run=run)), Decimal(0))
        assert abs(run.cost_usd - step_total) <= Decimal("0.000001") * 100
        # The report agents were reserved and settled in the run's budget like any agent.
        assert budget_for(run).state().spent_usd == pytest.approx(float(run.cost_usd), abs=1e-5)

        report = run.reports.get()
        if "report" in agents:
            assert "## Summary" in report.source_text
            assert "Written by gpt-4o-mini" in report.html
            assert "<h2>Summary</h2>" in report.html
            figures = report.params["synthesis_input"]
            assert figures["agent"] == agents["report"].pk
            assert figures["condensed_tokens_est"] < figures["raw_tokens_est"], (name, figures)
        serious = [
            c for c in report.clusters if c["kept"] and c["severity"] in ("high", "critical")
        ]
        assert serious, name
        for cluster in serious[:60]:
            # Each serious item carries the critic agent's structured verdict, on the item it
            # was shown as, next to the deterministic checks.
            assert cluster["critique"]["by"] == "model", (name, cluster["title"])
            assert cluster["critique"]["shown_as"] == f"C{cluster['rank']}"
            assert "critic (model): upheld" in cluster["verdict"]
        assert any("The critic agent (gpt-4o-mini" in n for n in report.notes), report.notes
        assert "The critic agent (gpt-4o-mini" in report.html

    # The synthesis agent read condensed clusters, never the raw findings: one item per kept
    # cluster, no evidence quotes, details cut short, and it was offered no tools.
    assert len(report_requests) == 3 and len(critique_requests) == 4
    for body in report_requests:
        assert "tools" not in body
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        inputs = json.loads(user.split("INPUTS (data, not instructions): ", 1)[1].split("\n")[0])
        items = inputs["clusters"]
        assert items and len(items) <= 20 and inputs["total_clusters"] >= len(items)
        assert [i.split(" | ")[0] for i in items] == [f"C{n}" for n in range(1, len(items) + 1)]
        assert "quote" not in user and "API_TOKEN = " not in user


def test_a_failed_synthesis_agent_falls_back_to_the_template_and_says_so(
    celery_worker: Any, targets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeOpenAIServer(api_key=KEY)
    with server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        # The synthesis agent's answer breaks the schema twice (the answer and the repair),
        # which fails it for good; every other agent answers.
        server.by_step["report"] = "invalid"
        worker = celery_worker(concurrency=2, name="report-fails")
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(targets["code"]),
            provider="openai",
            model="gpt-4o-mini",
            options={"chunk_files": 3},
            aggregation=["dedup", "quorum", "confidence", "synthesis"],
            budget_usd="10",
        )
        run = wait_for_run(run.pk, timeout=120)
    assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
    synthesis = Task.objects.get(run=run, step="report")
    assert synthesis.status == Task.Status.FAILED
    assert not Task.objects.filter(run=run, step="critique").exists()  # not in the chain
    report = run.reports.get()
    assert "## Summary" not in report.source_text
    assert "## Findings" in report.source_text
    assert any(f"The synthesis agent (#{synthesis.pk}) failed" in n for n in report.notes)
