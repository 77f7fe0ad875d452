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

from typing import Any

import anthropic

from agents.contract import Usage
from agents.providers.dialect import CallSpec, Dialect, ToolCall, Turn
from agents.providers.loop import LLMProvider
from agents.providers.prompt import FINAL_TOOL
from agents.providers.registry import SDK_DEFAULT_URLS, ProviderConfig
from agents.providers.sdk_errors import SdkErrors, call_sdk

ERRORS = SdkErrors.of(anthropic, anthropic.AnthropicError, SDK_DEFAULT_URLS["anthropic"])


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

    def call(self, messages: list[dict[str, Any]], ask: CallSpec) -> Turn:
        final = {
            "name": FINAL_TOOL,
            "description": "Submit your final answer (once, at the end).",
            "input_schema": ask.schema,
        }
        specs = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in ask.tools
        ]
        # The API refuses a history that uses an undeclared tool, and a model may have called
        # one (then been refused): declare those as unavailable stubs.
        offered = {t.name for t in ask.tools} | {FINAL_TOOL}
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
        choice = {"type": "auto"} if ask.phase == "tools" else {"type": "tool", "name": FINAL_TOOL}

        def create(key: str) -> Any:
            client = anthropic.Anthropic(
                api_key=key,
                base_url=self.config.resolved_base_url(),
                max_retries=0,
                timeout=ask.timeout,
                open_telemetry=False,
                default_headers=self.config.headers or None,
            )
            send: Any = client.messages.create  # our dicts are valid params, typed loosely
            return send(
                model=self.model,
                max_tokens=ask.max_tokens,
                system=self.system,
                messages=messages,
                tools=[*specs, final],
                tool_choice=choice,
            )

        response = call_sdk(ERRORS, self.config, ask.timeout, create)
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
