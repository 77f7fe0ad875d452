"""Captured content in the GenAI conventions' parts-based message schema, cut per part so the
attribute stays valid JSON."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from agents import spans


def test_openai_and_anthropic_messages_become_parts() -> None:
    openai: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "print(1)"},
    ]
    anthropic: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "look"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    parsed = json.loads(spans.input_messages(openai + anthropic))
    assert [m["role"] for m in parsed] == [
        "system",
        "assistant",
        "tool",
        "user",
        "assistant",
        "user",
    ]
    assert parsed[1]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "read_file", "arguments": {"path": "a.py"}}
    ]
    assert parsed[2]["parts"] == [
        {"type": "tool_call_response", "id": "c1", "response": "print(1)"}
    ]
    assert parsed[4]["parts"][0]["arguments"] == {"q": "x"}
    assert parsed[5]["parts"][0] == {"type": "tool_call_response", "id": "t1", "response": "ok"}


def test_output_is_an_array_and_long_parts_are_cut_with_a_marker() -> None:
    huge = "x" * (spans.PART_MAX_CHARS * 3)
    call = SimpleNamespace(id="c2", name="read_file", arguments={"path": huge})
    out = json.loads(spans.output_messages(huge, [call], "tool_calls"))
    assert isinstance(out, list) and out[0]["finish_reason"] == "tool_call"
    text, tool = out[0]["parts"]
    assert text["content"].endswith(f"…[truncated {spans.PART_MAX_CHARS * 2} chars]")
    assert len(text["content"]) < spans.PART_MAX_CHARS + 40
    assert isinstance(tool["arguments"], str) and "truncated" in tool["arguments"]
    inputs = json.loads(spans.input_messages([{"role": "user", "content": huge}] * 3))
    assert all("truncated" in m["parts"][0]["content"] for m in inputs)
