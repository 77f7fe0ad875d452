"""What every agent span says, whichever provider made it: the agent's identity, its cost, and
(only when content capture is opted in) its messages in the conventions' parts-based schema.

``gen_ai.input.messages`` / ``gen_ai.output.messages`` are JSON arrays of
``{"role", "parts": [{"type": "text", "content"} | {"type": "tool_call", "id", "name",
"arguments"} | {"type": "tool_call_response", "id", "response"}], "finish_reason"?}``. Each part
is cut on its own, so the attribute stays valid JSON however long the conversation; a cut text
ends with ``TRUNCATED`` and the number of characters left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import Span

from agents import semconv
from agents.contract import AgentRequest

PART_MAX_CHARS = 4_000
TRUNCATED = "…[truncated {} chars]"


def agent_identity(request: AgentRequest) -> dict[str, Any]:
    """One identity on all of an agent's spans (invoke_agent, chat, execute_tool)."""
    identity: dict[str, Any] = {
        semconv.AGENT_NAME: request.agent_name or request.lens,
        semconv.AGENT_ID: str(request.task_id),
        semconv.RUN_ID: request.run_id,
        semconv.TASK_ID: request.task_id,
    }
    if request.conversation_id:
        identity[semconv.CONVERSATION_ID] = request.conversation_id
    return identity


def set_cost(
    span: Span, cost_usd: Decimal | None, unpriced: bool, *, offline: bool = False
) -> None:
    """The cost in USD under the name LLM-ops tools read, and ours. ``unpriced``: a call had no
    known price, so the cost (None for that call alone: no price is not $0) is a lower bound.
    ``offline``: the offline analyzer's nominal price, under our name only (no model was paid)."""
    span.set_attribute(semconv.UNPRICED, unpriced)
    if cost_usd is not None:
        if not offline:
            span.set_attribute(semconv.COST, float(cost_usd))
        span.set_attribute(semconv.COST_USD, float(cost_usd))


OFFLINE_PROVIDER = "heuristic"
# What an offline run's root and agent spans say of themselves, in Phoenix's metadata panel.
OFFLINE_METADATA = json.dumps(
    {
        "analyzer": "heuristic: offline static analysis, no language model",
        "tokens": "nominal (about four characters a token), not model tokens",
        "cost": "nominal, nothing was paid",
    }
)


def usage_attributes(provider: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Token counts of an agent or run: a model's under the conventions' names; the offline
    analyzer's nominal ones under ours, with the spans saying they are offline, so a tool that
    adds up gen_ai.usage.* (Phoenix, Langfuse) shows 0 model tokens for it, which is the truth."""
    if provider == OFFLINE_PROVIDER:
        return {
            semconv.OFFLINE: True,
            semconv.METADATA: OFFLINE_METADATA,
            semconv.NOMINAL_INPUT_TOKENS: input_tokens,
            semconv.NOMINAL_OUTPUT_TOKENS: output_tokens,
        }
    return {semconv.INPUT_TOKENS: input_tokens, semconv.OUTPUT_TOKENS: output_tokens}


# One vocabulary of finish reasons on every span and message, whichever SDK answered: the
# conventions' ``stop``, ``length``, ``content_filter``, ``tool_call``, ``error``.
FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "tool_calls": "tool_call",
    "tool_use": "tool_call",
    "function_call": "tool_call",
    "tool_call": "tool_call",
}


def normal_finish_reason(raw: str) -> str:
    """A provider's finish reason in the one vocabulary (an unknown one passes through)."""
    return FINISH_REASONS.get(raw, raw or "unknown")


def error_type(exc: BaseException) -> str:
    """``error.type`` of a failed call: the ProviderError's own (an HTTP status, "timeout",
    …), else the exception's class name."""
    return str(getattr(exc, "error_type", "") or type(exc).__name__)


def server_attributes(url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a provider's base URL (the port the scheme
    implies when the URL names none)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {semconv.SERVER_ADDRESS: parts.hostname, semconv.SERVER_PORT: port}


def tool_definitions(tools: Iterable[Any]) -> str:
    """``gen_ai.tool.definitions``: the tools offered to the model, as the conventions' JSON
    array of ``{"type": "function", "name", "description", "parameters"}``."""
    return json.dumps(
        [
            {
                "type": "function",
                "name": tool.name,
                "description": _cut(tool.description),
                "parameters": tool.parameters,
            }
            for tool in tools
        ],
        default=str,
    )


def system_instructions(system: str) -> str:
    """``gen_ai.system_instructions`` for a system prompt sent apart from the messages."""
    return json.dumps([{"type": "text", "content": _cut(system)}])


def _cut(text: str) -> str:
    if len(text) <= PART_MAX_CHARS:
        return text
    return text[:PART_MAX_CHARS] + TRUNCATED.format(len(text) - PART_MAX_CHARS)


def _arguments(value: Any) -> Any:
    """Tool-call arguments as an object when small enough, else as a cut string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return _cut(value)
    text = json.dumps(value, default=str)
    return value if len(text) <= PART_MAX_CHARS else _cut(text)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(item.get("text", item.get("content", ""))) for item in content)
    return "" if content is None else str(content)


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of one native message (OpenAI chat or Anthropic messages shape)."""
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if message.get("role") == "tool":  # OpenAI's answer to a tool call
        return [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id", ""),
                "response": _cut(_text_of(content)),
            }
        ]
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else "text"
        if kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": block.get("id", ""),
                    "name": block.get("name", ""),
                    "arguments": _arguments(block.get("input")),
                }
            )
        elif kind == "tool_result":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": block.get("tool_use_id", ""),
                    "response": _cut(_text_of(block.get("content"))),
                }
            )
        else:
            text = _text_of(block.get("text") if isinstance(block, dict) else block)
            if text:
                parts.append({"type": "text", "content": _cut(text)})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "arguments": _arguments(function.get("arguments")),
            }
        )
    return parts


def input_messages(messages: list[dict[str, Any]]) -> str:
    """``gen_ai.input.messages`` for the conversation sent to the model."""
    return json.dumps(
        [{"role": m.get("role", "user"), "parts": _parts(m)} for m in messages], default=str
    )


def output_messages(text: str, tool_calls: list[Any], finish_reason: str) -> str:
    """``gen_ai.output.messages``: always an array (one assistant message here)."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": _cut(text)}] if text else []
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": _arguments(c.arguments)}
        for c in tool_calls
    ]
    reason = normal_finish_reason(finish_reason)
    return json.dumps([{"role": "assistant", "parts": parts, "finish_reason": reason}])


def set_tool_content(span: Span, arguments: Any, result: str) -> None:
    """A tool call's arguments and result (opt-in content, like messages): JSON text, each cut
    at ``PART_MAX_CHARS`` with a marker."""
    span.set_attribute(
        semconv.TOOL_CALL_ARGUMENTS, _cut(json.dumps(_arguments(arguments), default=str))
    )
    span.set_attribute(semconv.TOOL_CALL_RESULT, _cut(result))
