"""Judges through the real openai SDK against the local OpenAI-compatible server, in a real
Celery worker: strict answers validated, scores in the scorecard, the export carries it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.evaluation.judge import JUDGE_SCHEMA
from runs.actions import launch_run
from runs.models import Run, Task
from runs.pages.report import report_document
from tests.engine.helpers import wait_for_run
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
KEY = "sk-eval-judges-KEY-0123456789abcdef"


def test_model_judges_score_every_cell_and_fill_the_scorecard(
    celery_worker: Any, tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path.resolve()
    settings.HARNESS_TARGET_ROOTS = [root]
    target = root / "eval"
    target.mkdir()
    items = [
        {"id": 1, "prompt": "Capital of France?", "response": "Paris is.", "reference": "Paris"},
        {"id": 2, "prompt": "2+2?", "response": "Five.", "reference": "Four"},
        {"id": 3, "prompt": "Red planet?", "response": "Mars.", "reference": "Mars"},
    ]
    (target / "dataset.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    server = FakeOpenAIServer(api_key=KEY)
    with server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        celery_worker(concurrency=4, name="eval-judges")
        run = launch_run(
            user=None,
            playbook="evaluation",
            target_path=str(target),
            provider="openai",
            model="gpt-4o-mini",
            options={"dimensions": "correctness,clarity"},
            budget_usd="5",
        )
        run = wait_for_run(run.pk, timeout=240)
        judge_requests = [
            r.body
            for r in server.requests
            if isinstance(r.body, dict)
            and any("STEP: judge" in str(m.get("content")) for m in r.body["messages"])
        ]
    errors = list(Task.objects.filter(run=run).values_list("error", flat=True)[:2])
    assert run.status == Run.Status.AWAITING_REVIEW, (run.status, errors)
    judges = Task.objects.filter(run=run, step="judge")
    assert judges.count() == 6 and set(judges.values_list("status", flat=True)) == {"succeeded"}
    assert len(judge_requests) == 6, [
        (type(r.body), str(r.body)[:300]) for r in server.requests[:3]
    ]
    schema = judge_requests[0]["response_format"]["json_schema"]
    assert schema["strict"] is True and schema["schema"] == JUDGE_SCHEMA
    card = report_document(run, run.reports.get())["scorecard"]
    by_id = {item["id"]: item for item in card["items"]}
    # the fake model gives 5 when the reference appears in the response, else 2
    assert by_id["1"]["scores"]["correctness"] == 5.0
    assert by_id["2"]["scores"]["correctness"] == 2.0
    correctness = next(d for d in card["dimensions"] if d["name"] == "correctness")
    assert correctness["mean"] == pytest.approx(4.0) and correctness["n"] == 3
    assert by_id["2"]["rationale"]["correctness"] == "reference missing"
