"""What a provider kind implements for the agent loop (``agents.providers.loop``): a ``Dialect``
that makes one model call through its SDK and keeps the conversation in its native message
shapes, and the provider-neutral shapes the loop reads a call's answer in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from agents.contract import Usage as TokenUsage
from agents.providers.prompt import ToolSpec

Phase = Literal["tools", "final"]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | str  # a str when the model sent arguments that are not JSON


@dataclass
class Turn:
    """One model response in a provider-neutral shape; ``message`` is the native assistant
    message (JSON-able) to append to the history, and is what a replay restores."""

    text: str
    tool_calls: list[ToolCall]
    usage: TokenUsage
    response_model: str
    message: dict[str, Any]
    final: Any = None  # payload of a final_answer tool call, when the dialect uses one
    finish_reason: str = ""
    request_id: str = ""

    def to_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = "model"
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Turn:
        usage = data.get("usage") or {}
        return cls(
            text=data.get("text", ""),
            tool_calls=[ToolCall(**call) for call in data.get("tool_calls", [])],
            usage=TokenUsage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            response_model=data.get("response_model", ""),
            message=data.get("message", {}),
            final=data.get("final"),
            finish_reason=data.get("finish_reason", ""),
            request_id=data.get("request_id", ""),
        )


@dataclass(frozen=True)
class CallSpec:
    """What the loop asks of one model call, whichever SDK makes it."""

    phase: Phase
    tools: list[ToolSpec]  # a dialect may leave them out of a final turn (OpenAI does)
    schema: dict[str, Any]  # the final answer's JSON schema
    max_tokens: int
    timeout: float


class Dialect(Protocol):
    """What a provider kind implements: its SDK call and its message shapes."""

    final_instructions: str

    def start(self, system: str, user: str) -> list[dict[str, Any]]: ...

    def call(self, messages: list[dict[str, Any]], ask: CallSpec) -> Turn:
        """One model call; raises ProviderError (mapped, secret-free) on any SDK failure.
        ``ask.phase`` "final" must produce the structured answer (no further tool use)."""
        ...

    def append_assistant(self, messages: list[dict[str, Any]], turn: Turn) -> None: ...

    def append_tool_results(
        self, messages: list[dict[str, Any]], results: list[tuple[ToolCall, str, bool]]
    ) -> None: ...

    def append_user(self, messages: list[dict[str, Any]], text: str) -> None: ...

    def append_repair(self, messages: list[dict[str, Any]], turn: Turn, problems: str) -> None: ...
