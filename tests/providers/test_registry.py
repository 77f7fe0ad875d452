"""The provider registry: built-ins from env, extra providers from a validated file, prices."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from agents.contract import ProviderError
from agents.providers.catalog import build_provider
from agents.providers.registry import (
    price_overrides,
    provider_config,
    provider_names,
)

VLLM_YAML = """
providers:
  vllm:
    kind: openai
    base_url: http://127.0.0.1:8001/v1
    api_key_env: VLLM_API_KEY
    api_key_required: false
    default_model: Qwen/Qwen2.5-7B-Instruct
    rpm: 600
    concurrency: 8
    prices: {"*": {input: 0, output: 0}}
  openai:
    tpm: 90000
"""


def test_builtins_read_the_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "local-model")
    with override_settings(HARNESS_PROVIDERS_FILE=""):
        assert provider_names() == ["anthropic", "openai"]
        config = provider_config("openai")
        assert config.resolved_base_url() == "http://127.0.0.1:9/v1"
        assert config.default_model == "local-model" and config.max_tokens_param == "max_tokens"
        assert provider_config("anthropic").api_key_env == "ANTHROPIC_API_KEY"


def test_providers_file_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(VLLM_YAML)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with override_settings(HARNESS_PROVIDERS_FILE=str(path)):
        assert provider_names() == ["anthropic", "openai", "vllm"]
        vllm = provider_config("vllm")
        assert vllm.kind == "openai" and vllm.rpm == 600 and vllm.api_key() == "no-key"
        assert provider_config("openai").tpm == 90000
        assert provider_config("openai").api_key_env == "OPENAI_API_KEY"  # rest kept
        assert price_overrides()[("vllm", "*")] == (Decimal(0), Decimal(0))
        provider = build_provider("vllm")
        assert provider.name == "vllm" and provider.concurrency == 8  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"kind": "openai", "base_url": "ftp://x", "default_model": "m"}, "providers.bad.base_url"),
        ({"kind": "cohere", "default_model": "m"}, "providers.bad.kind"),
        ({"kind": "openai", "default_model": "m", "rpm": 0}, "providers.bad.rpm"),
        ({"kind": "openai", "default_model": "m", "colour": "red"}, "providers.bad.colour"),
        ({"kind": "openai"}, "providers.bad.default_model"),
    ],
)
def test_bad_file_names_the_bad_field(tmp_path: Path, entry: dict[str, object], field: str) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"providers": {"bad": entry}}))
    with (
        override_settings(HARNESS_PROVIDERS_FILE=str(path)),
        pytest.raises(ImproperlyConfigured, match=field.replace(".", r"\.")),
    ):
        provider_names()


def test_a_pasted_key_is_refused_without_being_echoed(tmp_path: Path) -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    path = tmp_path / "providers.json"
    path.write_text(
        json.dumps(
            {"providers": {"p": {"kind": "openai", "default_model": "m", "api_key_env": key}}}
        )
    )
    with (
        override_settings(HARNESS_PROVIDERS_FILE=str(path)),
        pytest.raises(ImproperlyConfigured) as caught,
    ):
        provider_names()
    assert "providers.p.api_key_env" in str(caught.value) and key not in str(caught.value)


def test_heuristic_is_reserved_and_unknown_names_are_permanent_errors(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    path.write_text(
        json.dumps({"providers": {"heuristic": {"kind": "openai", "default_model": "m"}}})
    )
    with (
        override_settings(HARNESS_PROVIDERS_FILE=str(path)),
        pytest.raises(ImproperlyConfigured, match="reserved"),
    ):
        provider_names()
    with override_settings(HARNESS_PROVIDERS_FILE=""), pytest.raises(ProviderError) as caught:
        build_provider("nope")
    assert caught.value.permanent and "openai" in str(caught.value)


def test_spans_carry_genai_and_harness_attributes_without_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agents.providers.openai_provider import OpenAIProvider
    from agents.snapshot import Snapshot, freeze_directory
    from harness_site.telemetry import setup_telemetry
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.providers.conftest import APP, OPENAI_KEY, FakeContext, config_for, make_request

    exporter = InMemorySpanExporter()
    setup_telemetry("test").add_span_processor(SimpleSpanProcessor(exporter))
    root = tmp_path / "t"
    root.mkdir()
    (root / "app.py").write_text(APP)
    manifest = freeze_directory(root, [root], tmp_path / "store")
    snapshot = Snapshot.open(tmp_path / "store", manifest.key)
    with FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        OpenAIProvider(config_for(server, "openai")).run_agent(
            make_request(snapshot, FakeContext(), files=["app.py"])
        )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    chat, tool = spans["chat gpt-4o-mini"], spans["execute_tool read_file"]
    assert chat.kind.name == "CLIENT" and chat.attributes is not None
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    input_tokens = chat.attributes["gen_ai.usage.input_tokens"]
    assert isinstance(input_tokens, int) and input_tokens > 0
    assert chat.attributes["harness.run_id"] == 1 and chat.attributes["harness.task_id"] == 1
    cost_usd = chat.attributes["harness.cost_usd"]
    assert isinstance(cost_usd, float) and cost_usd > 0
    assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == "read_file"
    dumped = json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert "hunter2" not in dumped and "gen_ai.input.messages" not in dumped


def test_with_content_capture_tool_spans_carry_their_arguments_and_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agents.providers.openai_provider import OpenAIProvider
    from agents.snapshot import Snapshot, freeze_directory
    from harness_site.telemetry import setup_telemetry
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.providers.conftest import APP, OPENAI_KEY, FakeContext, config_for, make_request

    settings.HARNESS_CAPTURE_CONTENT = True
    exporter = InMemorySpanExporter()
    setup_telemetry("test").add_span_processor(SimpleSpanProcessor(exporter))
    root = tmp_path / "t"
    root.mkdir()
    (root / "app.py").write_text(APP + "# filler\n" * 2000)
    manifest = freeze_directory(root, [root], tmp_path / "store")
    snapshot = Snapshot.open(tmp_path / "store", manifest.key)
    with FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        OpenAIProvider(config_for(server, "openai")).run_agent(
            make_request(snapshot, FakeContext(), files=["app.py"])
        )
    tool = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool read_file")
    attributes = dict(tool.attributes or {})
    assert json.loads(str(attributes["gen_ai.tool.call.arguments"])) == {"path": "app.py"}
    result = str(attributes["gen_ai.tool.call.result"])
    assert "hunter2" in result  # the file's text, as the model read it (opt-in)
    assert len(result) < 4_200 and "…[truncated " in result  # cut, with a marker
