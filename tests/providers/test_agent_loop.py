"""The agent loop through the real SDKs against local fake servers, with an in-memory context."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from agents.contract import BudgetExhausted, ProviderError, RateLimited
from agents.providers.anthropic_provider import AnthropicProvider
from agents.providers.loop import LLMProvider
from agents.providers.openai_provider import OpenAIProvider
from agents.snapshot import Snapshot
from tests.fakes import FakeServer
from tests.providers.conftest import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    FakeContext,
    closed_port,
    config_for,
    make_request,
)

KINDS = ["openai", "anthropic"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(kind: str, openai_server: FakeServer, anthropic_server: FakeServer) -> FakeServer:
    return openai_server if kind == "openai" else anthropic_server


def provider_for(server: FakeServer, kind: str, **extra: Any) -> LLMProvider:
    config = config_for(server, kind, **extra)
    return OpenAIProvider(config) if kind == "openai" else AnthropicProvider(config)


def key_of(kind: str) -> str:
    return OPENAI_KEY if kind == "openai" else ANTHROPIC_KEY


def test_agent_reads_its_scope_with_tools_and_returns_validated_findings(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    context = FakeContext()
    result = provider_for(server, kind).run_agent(
        make_request(snapshot, context, files=["src/app.py"])
    )

    assert [t["name"] for t in context.tools] == ["read_file"]
    assert context.tools[0]["ok"] and "hunter2" in context.tools[0]["content"]
    finding = result.output.findings[0]
    assert finding.path == "src/app.py" and finding.line_start == 4
    assert len(context.after) == 2 and context.before == context.after  # model, tool, model
    assert sorted(context.stored) == [0, 1, 2]
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    first = server.model_requests()[0].body
    offered = (
        [t["function"]["name"] for t in first["tools"]]
        if kind == "openai"
        else [t["name"] for t in first["tools"]]
    )
    assert offered[:3] == ["list_dir", "read_file", "search"]
    assert "spawn_subagent" not in offered


def test_system_prompt_states_lens_scope_tools_and_that_target_text_is_data(
    openai_server: FakeServer, snapshot: Snapshot
) -> None:
    provider_for(openai_server, "openai").run_agent(
        make_request(snapshot, FakeContext(), files=["src/app.py"])
    )
    system = openai_server.model_requests()[0].body["messages"][0]["content"]
    assert "'security' lens" in system and "src/app.py" in system
    assert "DATA" in system and "never instructions" in system
    assert "list_dir, read_file, search" in system and '"findings"' in system


def test_resume_from_stored_steps_pays_nothing_again(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    first = FakeContext()
    provider = provider_for(server, kind)
    expected = provider.run_agent(make_request(snapshot, first, files=["src/app.py"]))
    calls = len(server.model_requests())

    again = FakeContext(stored=first.stored)
    result = provider.run_agent(make_request(snapshot, again, files=["src/app.py"]))
    assert len(server.model_requests()) == calls  # nothing sent
    assert again.before == again.after == again.tools == []  # nothing reserved or re-run
    assert result.output == expected.output

    # Killed after the tool step: only the last model call is made again.
    partial = FakeContext(stored={i: first.stored[i] for i in (0, 1)})
    result = provider.run_agent(make_request(snapshot, partial, files=["src/app.py"]))
    assert len(server.model_requests()) == calls + 1
    assert partial.before == [2] and result.output.findings == expected.output.findings


def test_injected_instructions_lead_to_refused_calls_and_nothing_outside_is_read(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    context = FakeContext()
    result = provider_for(server, kind).run_agent(
        make_request(snapshot, context, files=["src/notes.py"], tools=["read_file"])
    )

    refused = {(t["name"], json.dumps(t["arguments"])) for t in context.tools if t["refused"]}
    assert ("delete_everything", "{}") in refused
    assert ("read_file", json.dumps({"path": "../../etc/passwd"})) in refused
    assert ("read_file", json.dumps({"path": "../outside.txt"})) in refused
    assert "refused" in result.output.summary
    sent = server.everything_recorded()
    assert "TOP-SECRET-OUTSIDE" not in sent and "root:x:0" not in sent
    # The model is told the call was refused (the brain saw refusal texts).
    assert sent.count("was refused") >= 3


def test_invalid_output_gets_one_repair_round(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    server.plan = ["invalid"]
    result = provider_for(server, kind).run_agent(
        make_request(snapshot, FakeContext(), files=["src/app.py"], tools=[])
    )
    assert len(server.model_requests()) == 2
    assert "invalid" in server.everything_recorded().lower()  # the repair says what was wrong
    assert result.output.summary.startswith("Read")


@pytest.mark.parametrize("behaviour", ["malformed", "invalid"])
def test_bad_output_twice_is_a_clean_permanent_failure(
    kind: str, server: FakeServer, snapshot: Snapshot, behaviour: str
) -> None:
    server.plan = [behaviour, behaviour]
    with pytest.raises(ProviderError) as caught:
        provider_for(server, kind).run_agent(
            make_request(snapshot, FakeContext(), files=["src/app.py"])
        )
    assert caught.value.permanent and "after one repair round" in str(caught.value)
    assert len(server.model_requests()) == 2


def test_prose_answer_gets_a_structured_final_turn(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    server.prose = True
    result = provider_for(server, kind).run_agent(
        make_request(snapshot, FakeContext(), files=["src/app.py"])
    )
    last = server.model_requests()[-1].body
    if kind == "openai":
        assert last["response_format"]["json_schema"]["strict"] is True and "tools" not in last
    else:
        assert last["tool_choice"] == {"type": "tool", "name": "final_answer"}
    assert result.output.findings


def test_step_limit_forces_the_final_answer(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    context = FakeContext()
    result = provider_for(server, kind).run_agent(
        make_request(
            snapshot,
            context,
            files=["src/app.py", "src/notes.py"],
            tools=["read_file"],
            max_steps=1,
        )
    )
    assert len(server.model_requests()) == 2  # one tool turn, then the final turn
    assert result.output.summary


@pytest.mark.parametrize("behaviour", ["429", "500", "503", "529", "garbage"])
def test_server_errors_are_transient_and_release_the_reservation(
    kind: str, server: FakeServer, snapshot: Snapshot, behaviour: str
) -> None:
    # 529 is Anthropic's "overloaded"; from an OpenAI-compatible gateway it is just another 5xx.
    server.plan = [behaviour]
    context = FakeContext()
    with pytest.raises(ProviderError) as caught:
        provider_for(server, kind).run_agent(make_request(snapshot, context, files=["src/app.py"]))
    assert not caught.value.permanent
    assert context.released == [0] and context.after == []
    if behaviour == "429" or (behaviour == "529" and kind == "anthropic"):
        assert caught.value.retry_after == 7.0
    # A 429 asks us to wait: the worker retries it without counting a failed attempt.
    assert isinstance(caught.value, RateLimited) == (behaviour == "429")
    assert len(server.model_requests()) == 1  # SDK retries are off: the harness owns them


def test_slow_response_times_out_as_transient(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    server.plan, server.slow_seconds = ["slow"], 3.0
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider_for(server, kind, timeout_s=0.5).run_agent(
            make_request(snapshot, FakeContext(), files=["src/app.py"])
        )
    assert not caught.value.permanent and "no response within 0.5s" in str(caught.value)
    assert time.monotonic() - started < 2.5


def test_connection_refused_is_transient(kind: str, snapshot: Snapshot) -> None:
    class Closed:
        base_url = f"http://127.0.0.1:{closed_port()}" + ("/v1" if kind == "openai" else "")

    with pytest.raises(ProviderError) as caught:
        provider_for(Closed(), kind).run_agent(  # type: ignore[arg-type]
            make_request(snapshot, FakeContext(), files=["src/app.py"])
        )
    assert not caught.value.permanent and "cannot connect" in str(caught.value)


def test_wrong_key_is_permanent_and_no_key_appears_in_the_message(
    kind: str, server: FakeServer, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-key-abcdefghijklmnop-SECRET"
    monkeypatch.setenv("TEST_OPENAI_KEY" if kind == "openai" else "TEST_ANTHROPIC_KEY", wrong)
    with pytest.raises(ProviderError) as caught:
        provider_for(server, kind).run_agent(
            make_request(snapshot, FakeContext(), files=["src/app.py"])
        )
    assert caught.value.permanent and "HTTP 401" in str(caught.value)
    assert wrong not in str(caught.value) and key_of(kind) not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_missing_key_names_the_variable_and_calls_nothing(
    kind: str, server: FakeServer, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = "TEST_OPENAI_KEY" if kind == "openai" else "TEST_ANTHROPIC_KEY"
    monkeypatch.delenv(variable)
    with pytest.raises(ProviderError) as caught:
        provider_for(server, kind).run_agent(
            make_request(snapshot, FakeContext(), files=["src/app.py"])
        )
    assert caught.value.permanent and variable in str(caught.value)
    assert server.requests == []


def test_key_is_sent_only_in_its_auth_header(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    provider_for(server, kind).run_agent(
        make_request(snapshot, FakeContext(), files=["src/app.py"])
    )
    key = key_of(kind)
    assert key not in server.everything_recorded()
    for recorded in server.requests:
        carrying = [name for name, value in recorded.headers.items() if key in value]
        assert len(carrying) == 1 and carrying[0] in ("authorization", "x-api-key")
    assert all(r.headers.get("x-stainless-retry-count", "0") == "0" for r in server.requests)


def test_rate_limit_wait_raises_transient_before_calling(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    provider = provider_for(server, kind, rpm=1)
    context = FakeContext()
    with pytest.raises(ProviderError) as caught:
        provider.run_agent(make_request(snapshot, context, files=["src/app.py"]))
    assert not caught.value.permanent and 50 < (caught.value.retry_after or 0) <= 60
    assert len(server.model_requests()) == 1  # the second call waited for nothing: it raised
    assert context.before == [0]  # no reservation was taken for the refused call


def test_budget_refusal_stops_before_calling(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    with pytest.raises(BudgetExhausted):
        provider_for(server, kind).run_agent(
            make_request(snapshot, FakeContext(budget_tokens=10), files=["src/app.py"])
        )
    assert server.requests == []


def test_a_call_is_sent_with_the_output_cap_its_budget_grant_pays_for(
    kind: str, server: FakeServer, snapshot: Snapshot
) -> None:
    context = FakeContext(output_cap=300)  # less than the request's max_tokens (512)
    provider_for(server, kind).run_agent(make_request(snapshot, context, files=["src/app.py"]))
    sent = [
        r.body.get("max_tokens", r.body.get("max_completion_tokens"))
        for r in server.model_requests()
    ]
    assert len(sent) == 2 and sent == [300, 300]


def test_spawn_requests_are_collected_not_executed(
    openai_server: FakeServer, snapshot: Snapshot, tmp_path: Any
) -> None:
    from agents.tools import ToolResult

    context = FakeContext()
    request = make_request(
        snapshot,
        context,
        files=["src/app.py"],
        tools=["read_file", "spawn_subagent"],
        can_spawn=True,
        max_children=1,
    )
    provider = provider_for(openai_server, "openai")
    from agents.providers.dialect import ToolCall
    from agents.providers.loop import AgentLoop

    loop = AgentLoop(request, provider.dialect("m"), provider.config, "m", 5.0)
    args = {"scope": {"files": ["src/app.py"], "document": None}, "why": "deeper", "lens": None}
    assert loop._spawn(ToolCall("c1", "spawn_subagent", args)) == ToolResult(
        ok=True, content="spawn requested; the engine will decide"
    )
    assert loop._spawn(ToolCall("c2", "spawn_subagent", args)).refused  # max_children = 1
    assert loop.spawns[0].scope == {"files": ["src/app.py"]}
