"""Chat and tool spans in the GenAI conventions as LLM-ops tools read them: where the call went,
what it asked for, why it ended (one vocabulary for both SDKs), and a specific ``error.type``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents.contract import ProviderError
from agents.providers.anthropic_provider import AnthropicProvider
from agents.providers.loop import LLMProvider
from agents.providers.openai_provider import OpenAIProvider
from agents.snapshot import Snapshot
from agents.spans import FINISH_REASONS
from harness_site.telemetry import setup_telemetry
from tests.fakes import FakeServer
from tests.providers.conftest import FakeContext, closed_port, config_for, make_request

VOCABULARY = set(FINISH_REASONS.values())


@pytest.fixture(params=["openai", "anthropic"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(kind: str, openai_server: FakeServer, anthropic_server: FakeServer) -> FakeServer:
    return openai_server if kind == "openai" else anthropic_server


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    setup_telemetry("test").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def provider_for(server: Any, kind: str, **extra: Any) -> LLMProvider:
    config = config_for(server, kind, **extra)
    return OpenAIProvider(config) if kind == "openai" else AnthropicProvider(config)


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def test_chat_spans_name_the_server_the_request_and_one_finish_vocabulary(
    kind: str, server: FakeServer, snapshot: Snapshot, exporter: InMemorySpanExporter
) -> None:
    provider_for(server, kind).run_agent(
        make_request(snapshot, FakeContext(), files=["src/app.py"])
    )
    chats, tools = named(exporter, "chat "), named(exporter, "execute_tool ")
    assert len(chats) == 2 and tools  # model, tool, model
    where = urlsplit(server.base_url)  # type: ignore[attr-defined]
    reasons = []
    for chat in chats:
        attributes = dict(chat.attributes or {})
        assert attributes["server.address"] == where.hostname
        assert attributes["server.port"] == where.port
        assert attributes["gen_ai.request.max_tokens"] == 512
        assert attributes["gen_ai.output.type"] in ("text", "json")
        reasons += list(attributes["gen_ai.response.finish_reasons"])  # type: ignore[arg-type]
        # Content stays opt-in: no definitions or instructions without capture.
        assert "gen_ai.tool.definitions" not in attributes
        assert "gen_ai.system_instructions" not in attributes
    assert set(reasons) <= VOCABULARY and "tool_call" in reasons
    assert reasons[-1] in ("stop", "tool_call")  # a final answer by text or by final_answer
    for tool in tools:
        attributes = dict(tool.attributes or {})
        assert "gen_ai.provider.name" not in attributes  # tools run here, not at the provider
        assert "server.address" not in attributes
        assert attributes["gen_ai.agent.id"] == "1"


def test_with_capture_the_system_prompt_and_tools_are_recorded_once(
    kind: str,
    server: FakeServer,
    snapshot: Snapshot,
    exporter: InMemorySpanExporter,
    settings: Any,
) -> None:
    settings.HARNESS_CAPTURE_CONTENT = True
    provider_for(server, kind).run_agent(
        make_request(snapshot, FakeContext(), files=["src/app.py"])
    )
    first = dict(named(exporter, "chat ")[0].attributes or {})
    definitions = json.loads(str(first["gen_ai.tool.definitions"]))
    assert [d["name"] for d in definitions][:3] == ["list_dir", "read_file", "search"]
    assert all(d["type"] == "function" and "parameters" in d for d in definitions)
    messages = json.loads(str(first["gen_ai.input.messages"]))
    if kind == "anthropic":  # sent beside the messages: its own attribute, else it is lost
        instructions = json.loads(str(first["gen_ai.system_instructions"]))
        assert instructions[0]["type"] == "text" and "security" in instructions[0]["content"]
        assert all(m["role"] != "system" for m in messages)
    else:  # OpenAI's system prompt is the first message, and is recorded as one
        assert "gen_ai.system_instructions" not in first
        assert messages[0]["role"] == "system"


@pytest.mark.parametrize(("behaviour", "expected"), [("429", "429"), ("500", "500")])
def test_a_failed_call_says_which_failure_in_error_type(
    kind: str,
    server: FakeServer,
    snapshot: Snapshot,
    exporter: InMemorySpanExporter,
    behaviour: str,
    expected: str,
) -> None:
    server.plan = [behaviour]
    with pytest.raises(ProviderError) as caught:
        provider_for(server, kind).run_agent(
            make_request(snapshot, FakeContext(), files=["src/app.py"])
        )
    assert caught.value.error_type == expected
    (chat,) = named(exporter, "chat ")
    assert chat.status.status_code.name == "ERROR"
    assert dict(chat.attributes or {})["error.type"] == expected


def test_a_wrong_key_and_a_closed_port_are_told_apart(
    kind: str,
    server: FakeServer,
    snapshot: Snapshot,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY" if kind == "openai" else "TEST_ANTHROPIC_KEY", "sk-bad")
    with pytest.raises(ProviderError):
        provider_for(server, kind).run_agent(make_request(snapshot, None, files=["src/app.py"]))

    class Closed:
        base_url = f"http://127.0.0.1:{closed_port()}" + ("/v1" if kind == "openai" else "")

    with pytest.raises(ProviderError):
        provider_for(Closed(), kind).run_agent(make_request(snapshot, None, files=["src/app.py"]))
    types = [dict(s.attributes or {})["error.type"] for s in named(exporter, "chat ")]
    assert types == ["401", "connection_error"]
