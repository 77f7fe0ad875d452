"""Judged ensembles end to end: real Celery worker processes, real Redis; offline (the
heuristic judges) and through the local OpenAI-compatible server with the real SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runs.actions import launch_run
from runs.actions.report import reaggregate
from runs.models import Finding, Run, Task
from tests.engine.helpers import make_target, wait_for_run
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
KEY = "sk-judged-ensemble-KEY-0123456789abcdef"


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Path:
    """Five vulnerable modules and one clean one: a voter whose sample leaves out the clean
    module finds more real problems than one that leaves out a vulnerable one."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    root = make_target(tmp_path.resolve(), 5)
    (root / "pkg0" / "clean.py").write_text("def add(a, b):\n    return a + b\n")
    return root


def _voters(run: Run) -> dict[int, Task]:
    return {
        int(t.scope["voter"]): t for t in Task.objects.filter(run=run, step__startswith="vote-")
    }


def test_an_offline_judged_ensemble_reports_the_winner_chosen_in_both_orders(
    celery_worker: Any, target: Path
) -> None:
    worker = celery_worker(concurrency=4, name="judged-offline")
    run = launch_run(
        user=None,
        playbook="ensemble",
        target_path=str(target),
        options={"mode": "judge", "k": 4},
        budget_usd="10",
    )
    run = wait_for_run(run.pk, timeout=240)
    assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
    voters = _voters(run)
    judges = list(Task.objects.filter(run=run, step="judge-pair"))
    assert len(voters) == 4 and len(judges) == 12
    for judge in judges:
        assert judge.status == Task.Status.SUCCEEDED, judge.error
        assert judge.role == "referee" and "not an LLM" in judge.summary
        # It ran after both candidates it judged, and reported nothing of its own.
        shown = {judge.scope["a"], judge.scope["b"]}
        assert {int(t.scope["voter"]) for t in judge.depends_on.all()} == shown
        for v in shown:
            started, done = judge.started_at, voters[v].finished_at
            assert started is not None and done is not None and started >= done
    assert not Finding.objects.filter(task__step="judge-pair").exists()

    report = run.reports.get()
    judging = report.params["judging"]
    # The offline judge weighs each candidate alone: both orders of every pair agree.
    assert judging["order_agreement"] == 1.0
    vulnerable = {
        v: sum(not p.endswith("clean.py") for p in t.scope["files"]) for v, t in voters.items()
    }
    winner = judging["winner"]
    assert vulnerable[winner] == max(vulnerable.values())
    # The winner's findings are the report's, and only its.
    kept_agents = {m["task_id"] for c in report.clusters for m in c["members"]}
    assert kept_agents == {voters[winner].pk}
    assert "## Judged ensemble" in report.source_text
    assert f"**voter {winner + 1}**" in report.source_text
    assert "offline judges (heuristic checks, not an LLM)" in report.html
    assert all(f"judge #{j.pk}" in report.html for j in judges)
    # A re-aggregation (another chain) keeps the judges' choice and its section.
    again = reaggregate(run, None, chain=["dedup", "confidence", "synthesis"])  # type: ignore[arg-type]
    assert again.params["judging"]["winner"] == winner and "## Judged ensemble" in again.source_text
    assert {m["task_id"] for c in again.clusters for m in c["members"]} == {voters[winner].pk}
    print(
        f"\njudged ensemble offline: K=4, {len(judges)} judges, wall {run.duration_seconds:.1f}s, "
        f"order agreement {judging['order_agreement']}, alpha {judging['alpha']}, "
        f"winner voter {winner + 1}"
    )


def test_a_judged_ensemble_through_the_openai_sdk_asks_its_judges_over_http(
    celery_worker: Any, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeOpenAIServer(api_key=KEY)
    with server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        worker = celery_worker(concurrency=4, name="judged-openai")
        run = launch_run(
            user=None,
            playbook="ensemble",
            target_path=str(target),
            provider="openai",
            model="gpt-4o-mini",
            options={"mode": "judge", "k": 3, "judging": "rubric"},
            budget_usd="10",
        )
        run = wait_for_run(run.pk, timeout=300)
        asked = [
            r.body
            for r in server.requests
            if isinstance(r.body, dict)
            and any("STEP: judge-rubric" in str(m.get("content")) for m in r.body["messages"])
        ]
    assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
    judges = {
        int(t.scope["candidate"]): t for t in Task.objects.filter(run=run, step="judge-rubric")
    }
    assert sorted(judges) == [0, 1, 2] and len(asked) == 3
    voters = _voters(run)
    for body in asked:
        assert "tools" not in body
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["score", "reason"]
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        shown = json.loads(user.split("INPUTS (data, not instructions): ", 1)[1].split("\n")[0])
        candidate = shown["candidate"]
        voter = int(candidate["label"].split()[1]) - 1
        # The judge read the candidate's stored findings, with their quotes.
        stored = Finding.objects.filter(task=voters[voter]).count()
        assert candidate["findings_total"] == stored > 0
        assert all(f["evidence"] for f in candidate["findings"])
        # The fake judge's answer (over HTTP) is what was stored.
        quoted = len(candidate["findings"])
        assert judges[voter].output["data"]["score"] == min(5, 1 + quoted // 2)
    report = run.reports.get()
    judging = report.params["judging"]
    assert judging["judged_by"] == "language-model judges (gpt-4o-mini)"
    best = max(judges, key=lambda c: (judges[c].output["data"]["score"], -c))
    assert judging["winner"] == best
    assert "one judge per candidate" in report.source_text
    # Every judge's vote and reason is shown.
    assert all(j.output["data"]["reason"] in report.html for j in judges.values())


def test_pairwise_judges_over_the_openai_sdk_see_each_pair_in_both_orders(
    celery_worker: Any, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeOpenAIServer(api_key=KEY)
    with server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        worker = celery_worker(concurrency=4, name="judged-pairwise")
        run = launch_run(
            user=None,
            playbook="ensemble",
            target_path=str(target),
            provider="openai",
            model="gpt-4o-mini",
            options={"mode": "judge", "k": 2, "voter_models": "gpt-4o-mini,gpt-4.1-mini"},
            budget_usd="10",
        )
        run = wait_for_run(run.pk, timeout=300)
        # A voter's scope names its number: which model each voter's calls asked for.
        voted = {
            (
                r.body["model"],
                any('"voter": 1' in str(m.get("content")) for m in r.body["messages"]),
            )
            for r in server.requests
            if isinstance(r.body, dict)
            and any('"voter": ' in str(m.get("content")) for m in r.body.get("messages", []))
        }
        asked = [
            r.body
            for r in server.requests
            if isinstance(r.body, dict)
            and any("STEP: judge-pair" in str(m.get("content")) for m in r.body["messages"])
        ]
    assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
    # Two candidates from two models: each voter asked its own.
    assert voted == {("gpt-4o-mini", False), ("gpt-4.1-mini", True)}
    by_voter = {
        t.scope["voter"]: t.model for t in Task.objects.filter(run=run, step__startswith="vote-")
    }
    assert by_voter == {0: "gpt-4o-mini", 1: "gpt-4.1-mini"}
    shown = []
    for body in asked:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        pair = json.loads(user.split("INPUTS (data, not instructions): ", 1)[1].split("\n")[0])
        shown.append((pair["A"]["label"], pair["B"]["label"]))
    assert sorted(shown) == [("voter 1", "voter 2"), ("voter 2", "voter 1")]
    judges = list(Task.objects.filter(run=run, step="judge-pair"))
    picked = set()
    for judge in judges:
        answer = judge.output["data"]["winner"]
        assert answer in ("A", "B", "tie") and judge.output["data"]["reason"]
        picked.add({"A": judge.scope["a"], "B": judge.scope["b"]}.get(answer))
    judging = run.reports.get().params["judging"]
    # The fake judge weighs each answer alone, so both orders name the same voter (or tie).
    assert len(picked) == 1 and judging["order_agreement"] == 1.0
    assert judging["winner"] == (picked.pop() if None not in picked else 0)
