"""Full runs against the local OpenAI- and Anthropic-compatible servers: real Celery worker
processes, real Redis, the real SDKs over real HTTP."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from agents.contract import Usage
from agents.pricing import price_call
from runs.actions import launch_run
from runs.models import Event, Finding, Run, Span, Step, Task
from tests.engine.helpers import make_target, wait_for_run
from tests.fakes import FakeServer
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
OPENAI_KEY = "sk-full-run-openai-KEY-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-full-run-KEY-0123456789abcdef"


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    return make_target(tmp_path.resolve(), 2)


def assert_costs_match_the_price_table(run: Run, kind: str, model: str) -> None:
    chats = list(Step.objects.filter(task__run=run, kind="chat"))
    assert chats
    for step in chats:
        price = price_call(kind, kind, model, Usage(step.tokens_in, step.tokens_out))
        assert price.cost_usd is not None and not step.unpriced
        assert step.cost_usd == price.cost_usd.quantize(Decimal("0.000001"))
    # Steps store 6 decimals; the run's total adds unrounded prices (at most 1e-6 per step off).
    total = sum((s.cost_usd for s in chats), Decimal(0))
    assert abs(run.cost_usd - total) <= Decimal("0.000001") * len(chats)


def run_against(server: FakeServer, kind: str, model: str, celery_worker: Any, target: Path) -> Run:
    worker = celery_worker(concurrency=4, name=f"full-{kind}")
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        provider=kind,
        model=model,
        options={"chunk_files": 1},
        budget_usd="10",
    )
    run = wait_for_run(run.pk, timeout=240)
    assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
    return run


def test_openai_run_calls_tools_stores_findings_and_prices_calls(
    celery_worker: Any, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        run = run_against(server, "openai", "gpt-4o-mini", celery_worker, target)
    tools = Step.objects.filter(task__run=run, kind="tool")
    assert tools.filter(name="read_file").count() >= 6  # 2 files x 3 lenses
    assert Finding.objects.filter(run=run, detail__icontains="TODO").exists()
    assert_costs_match_the_price_table(run, "openai", "gpt-4o-mini")
    assert Span.objects.filter(run=run, name="chat gpt-4o-mini").exists()
    assert Span.objects.filter(run=run, name="execute_tool read_file").exists()


def test_anthropic_run_calls_tools_stores_findings_and_prices_calls(
    celery_worker: Any, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeAnthropicServer(api_key=ANTHROPIC_KEY) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)  # type: ignore[attr-defined]
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        run = run_against(server, "anthropic", "claude-haiku-4-5", celery_worker, target)
    assert Step.objects.filter(task__run=run, kind="tool", name="read_file").count() >= 6
    assert Finding.objects.filter(run=run).exists()
    assert_costs_match_the_price_table(run, "anthropic", "claude-haiku-4-5")


def test_api_key_leaves_no_trace_in_database_logs_or_events(
    celery_worker: Any, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        server.plan = ["429", "500"]  # errors travel through messages, events and logs too
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        worker = celery_worker(concurrency=2, name="secrets")
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            provider="openai",
            model="gpt-4o-mini",
            options={"chunk_files": 1},
        )
        run = wait_for_run(run.pk, timeout=240)
        assert server.requests and OPENAI_KEY not in server.everything_recorded()
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert OPENAI_KEY not in dump.getvalue()
    assert OPENAI_KEY not in worker.log.read_text(errors="replace")
    events = json.dumps(list(Event.objects.filter(run=run).values("type", "payload")))
    assert OPENAI_KEY not in events and "task.retrying" in events


def test_rpm_limit_holds_across_two_worker_processes(
    celery_worker: Any, target: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    rpm = 8
    with FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        path = tmp_path / "providers.json"
        path.write_text(
            json.dumps(
                {
                    "providers": {
                        "limited": {
                            "kind": "openai",
                            "base_url": server.base_url,  # type: ignore[attr-defined]
                            "api_key_env": "LIMITED_API_KEY",
                            "default_model": "local-model",
                            "rpm": rpm,
                            # A self-hosted model priced at 0 (a zero reservation once
                            # tripped HINCRBY "-0").
                            "prices": {"*": {"input": 0, "output": 0}},
                        }
                    }
                }
            )
        )
        monkeypatch.setenv("HARNESS_PROVIDERS_FILE", str(path))
        monkeypatch.setenv("LIMITED_API_KEY", OPENAI_KEY)
        settings.HARNESS_PROVIDERS_FILE = str(path)
        celery_worker(concurrency=4, name="rate-a")
        celery_worker(concurrency=4, name="rate-b")
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            provider="limited",
            options={"chunk_files": 1},
        )
        run = wait_for_run(run.pk, timeout=240)
        times = sorted(r.at for r in server.model_requests())
    assert len(times) >= rpm  # the burst was used, then the limiter held the rest back
    # GCRA: a burst of `rpm`, then one request per 60/rpm seconds, whichever worker sends it.
    interval = 60 / rpm
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t - start <= 3 * interval]
        assert len(in_window) <= rpm + 3 + 1, (len(in_window), times)
    # Waiting went through Celery (slot freed, message re-sent) and cost no attempt: every
    # agent succeeded however long the limiter held it back.
    assert Event.objects.filter(run=run, type="task.rate_limited").exists()
    assert set(Task.objects.filter(run=run).values_list("status", flat=True)) == {"succeeded"}
    assert run.status == Run.Status.AWAITING_REVIEW
    assert Step.objects.filter(task__run=run, kind="chat", unpriced=False).exists()
