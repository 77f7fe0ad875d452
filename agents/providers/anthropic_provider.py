"""Anthropic messages API through the official ``anthropic`` SDK.

The final answer is a ``final_answer`` tool whose input schema is the output schema: offered
with the other tools (``tool_choice`` auto) so a model can finish in the same turn, and forced
(``tool_choice`` = that tool) in the final phase. Tool use is the oldest and most widely
supported structured-output mechanism of the messages API, so Anthropic-compatible gateways
handle it too. All tools are sent on every turn, the final one included, because the API refuses
a history with ``tool_use`` blocks for tools it was not given.

Clients are built per call: key read from the environment then, ``max_retries=0``, explicit
timeout, and the SDK's own OpenTelemetry spans off (ours carry the run and task ids).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import anthropic

from agents.contract import ProviderError, ProviderRateLimited, Usage
from agents.providers.loop import Dialect, LLMProvider, Phase, ToolCall, Turn
from agents.providers.prompt import FINAL_TOOL, ToolSpec, retry_after_seconds, safe_message
from agents.providers.registry import MissingApiKey, ProviderConfig

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 529})


def map_anthropic_error(
    exc: Exception, config: ProviderConfig, secret: str, timeout: float
) -> ProviderError:
    """An SDK exception as a secret-free ProviderError: 429, 529 (overloaded), 5xx, timeouts and
    connection failures are transient (with the server's Retry-After when it sends one)."""
    where = f"provider {config.name!r}"
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(f"{where}: no response within {timeout:g}s", permanent=False)
    if isinstance(exc, anthropic.APIConnectionError):
        host = urlsplit(config.resolved_base_url() or "https://api.anthropic.com").netloc
        return ProviderError(f"{where}: cannot connect to {host}", permanent=False)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        request_id = f" (request id {exc.request_id})" if exc.request_id else ""
        transient = status >= 500 or status in TRANSIENT_STATUSES
        if status == 429:
            # The server asks us to slow down: a wait like our own limiter's, not a failed
            # attempt (else a busy provider fails agents).
            return ProviderRateLimited(
                f"{where}: HTTP 429: {safe_message(exc.message, secret)}{request_id}",
                retry_after=retry_after_seconds(exc.response.headers) or 0.0,
            )
        return ProviderError(
            f"{where}: HTTP {status}: {safe_message(exc.message, secret)}{request_id}",
            permanent=not transient,
            retry_after=retry_after_seconds(exc.response.headers),
        )
    if isinstance(exc, anthropic.APIResponseValidationError | json.JSONDecodeError):
        return ProviderError(f"{where}: the server's response could not be read", permanent=False)
    return ProviderError(f"{where}: {safe_message(str(exc), secret)}", permanent=True)


class AnthropicDialect(Dialect):
    final_instructions = (
        "When you are done, call the final_answer tool exactly once; its input "
        "is your answer, matching the final answer schema."
    )

    def __init__(self, config: ProviderConfig, model: str) -> None:
        self.config = config
        self.model = model
        self.system = ""

    def start(self, system: str, user: str) -> list[dict[str, Any]]:
        self.system = system
        return [{"role": "user", "content": [{"type": "text", "text": user}]}]

    def call(
        self,
        messages: list[dict[str, Any]],
        *,
        phase: Phase,
        tools: list[ToolSpec],
        schema: dict[str, Any],
        max_tokens: int,
        timeout: float,
    ) -> Turn:
        final = {
            "name": FINAL_TOOL,
            "description": "Submit your final answer (once, at the end).",
            "input_schema": schema,
        }
        specs = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools
        ]
        # The API refuses a history that uses an undeclared tool, and a model may have called
        # one (then been refused): declare those as unavailable stubs.
        offered = {t.name for t in tools} | {FINAL_TOOL}
        used = {
            block["name"]
            for m in messages
            if m["role"] == "assistant"
            for block in m["content"]
            if block.get("type") == "tool_use"
        }
        specs += [
            {
                "name": name,
                "description": "Not available to this agent: always refused.",
                "input_schema": {"type": "object"},
            }
            for name in sorted(used - offered)
        ]
        choice = {"type": "auto"} if phase == "tools" else {"type": "tool", "name": FINAL_TOOL}
        secret = ""
        try:
            secret = self.config.api_key()
            client = anthropic.Anthropic(
                api_key=secret,
                base_url=self.config.resolved_base_url(),
                max_retries=0,
                timeout=timeout,
                open_telemetry=False,
                default_headers=self.config.headers or None,
            )
            create: Any = client.messages.create  # our dicts are valid params, typed loosely
            response = create(
                model=self.model,
                max_tokens=max_tokens,
                system=self.system,
                messages=messages,
                tools=[*specs, final],
                tool_choice=choice,
            )
        except MissingApiKey as exc:
            raise ProviderError(str(exc), permanent=True) from None
        except (anthropic.AnthropicError, json.JSONDecodeError) as exc:
            raise map_anthropic_error(exc, self.config, secret, timeout) from None
        return self._turn(response)

    def _turn(self, response: Any) -> Turn:
        texts, calls, blocks, final = [], [], [], None
        for block in response.content:
            if block.type == "text" and block.text:
                texts.append(block.text)
                blocks.append({"type": "text", "text": block.text})
            elif block.type == "tool_use":
                blocks.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                )
                if block.name == FINAL_TOOL and final is None:
                    final = block.input if block.input is not None else {}
                elif block.name != FINAL_TOOL:
                    arguments = block.input if isinstance(block.input, dict) else str(block.input)
                    calls.append(ToolCall(block.id, block.name, arguments))
        usage = response.usage
        input_tokens = (
            usage.input_tokens
            + (usage.cache_creation_input_tokens or 0)
            + (usage.cache_read_input_tokens or 0)
        )
        return Turn(
            text="\n".join(texts),
            tool_calls=calls,
            usage=Usage(input_tokens, usage.output_tokens),
            response_model=response.model or self.model,
            message={
                "role": "assistant",
                "content": blocks or [{"type": "text", "text": "(no answer)"}],
            },
            final=final,
            finish_reason=response.stop_reason or "",
            request_id=getattr(response, "_request_id", None) or response.id or "",
        )

    def append_assistant(self, messages: list[dict[str, Any]], turn: Turn) -> None:
        messages.append(turn.message)

    def append_tool_results(
        self, messages: list[dict[str, Any]], results: list[tuple[ToolCall, str, bool]]
    ) -> None:
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": content or "(empty)",
                        "is_error": is_error,
                    }
                    for call, content, is_error in results
                ],
            }
        )

    def append_user(self, messages: list[dict[str, Any]], text: str) -> None:
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "user":
            last["content"].append({"type": "text", "text": text})
        else:
            messages.append({"role": "user", "content": [{"type": "text", "text": text}]})

    def append_repair(self, messages: list[dict[str, Any]], turn: Turn, problems: str) -> None:
        # Every tool_use block must be answered by a tool_result in the next user message.
        results = [
            {
                "type": "tool_result",
                "tool_use_id": block["id"],
                "is_error": True,
                "content": (
                    f"Invalid final answer: {problems}"
                    if block["name"] == FINAL_TOOL
                    else "Not executed: final answer expected."
                ),
            }
            for block in turn.message.get("content", [])
            if block.get("type") == "tool_use"
        ]
        if results:
            messages.append({"role": "user", "content": results})
        self.append_user(
            messages,
            f"Your final answer was invalid: {problems}. Call "
            f"{FINAL_TOOL} again with a corrected answer.",
        )


class AnthropicProvider(LLMProvider):
    """Provider of kind ``anthropic`` (the messages API)."""

    def dialect(self, model: str) -> Dialect:
        return AnthropicDialect(self.config, model)
