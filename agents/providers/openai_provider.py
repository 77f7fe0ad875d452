"""OpenAI-compatible chat completions through the official ``openai`` SDK.

Works with OpenAI, Azure OpenAI (its ``/openai/v1/`` endpoint), vLLM, Ollama and llama.cpp's
server by changing the base URL. Choices made for that portability (docs/providers.md):

* Tool turns send ``tools`` and no ``tool_choice`` (Ollama ignores it; vLLM needs server flags
  for anything but "auto", which is also the API default).
* The final answer comes from a turn with ``response_format`` json_schema (``strict``) and no
  tools: all four servers enforce json_schema, while mixing it with tools breaks tool-call
  parsing on vLLM/llama.cpp. A model that already answers the tool phase with JSON skips that
  extra turn. The schema is strict-compatible (see ``agents.providers.prompt.output_schema``)
  and the answer is validated with pydantic regardless, since local servers may not enforce it.
* A client is built per call with the key read from the environment then, ``max_retries=0``
  (the harness owns retries) and an explicit timeout.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from agents.contract import ProviderError, Usage
from agents.providers.dialect import CallSpec, Dialect, ToolCall, Turn
from agents.providers.loop import LLMProvider
from agents.providers.prompt import estimate_input_tokens
from agents.providers.registry import SDK_DEFAULT_URLS, ProviderConfig
from agents.providers.sdk_errors import SdkErrors, call_sdk

# An exhausted quota answers 429 too, but waiting does not end it.
ERRORS = SdkErrors.of(
    openai,
    openai.OpenAIError,
    SDK_DEFAULT_URLS["openai"],
    quota_codes=frozenset({"insufficient_quota"}),
)


class OpenAIDialect(Dialect):
    final_instructions = (
        "When you are done, reply with only one JSON object matching the final "
        "answer schema (no prose, no code fences)."
    )

    def __init__(self, config: ProviderConfig, model: str) -> None:
        self.config = config
        self.model = model

    def start(self, system: str, user: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def call(self, messages: list[dict[str, Any]], ask: CallSpec) -> Turn:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.config.max_tokens_param: ask.max_tokens,
        }
        if ask.phase == "tools" and ask.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in ask.tools
            ]
        else:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "agent_output", "strict": True, "schema": ask.schema},
            }

        def create(key: str) -> Any:
            client = openai.OpenAI(
                api_key=key,
                base_url=self.config.resolved_base_url(),
                max_retries=0,
                timeout=ask.timeout,
                default_headers=self.config.headers or None,
            )
            return client.chat.completions.create(**kwargs)

        completion = call_sdk(ERRORS, self.config, ask.timeout, create)
        return self._turn(completion, messages)

    def _turn(self, completion: Any, messages: list[dict[str, Any]]) -> Turn:
        if not completion.choices:
            raise ProviderError(
                f"provider {self.config.name!r}: a response without choices", permanent=False
            )
        choice = completion.choices[0]
        text = choice.message.content or ""
        calls, native = [], []
        for n, tool_call in enumerate(choice.message.tool_calls or []):
            function = getattr(tool_call, "function", None)
            if function is None:  # a custom (non-function) tool call: not something we offered
                continue
            call_id = tool_call.id or f"call_{n}"  # some local servers leave ids empty
            raw = function.arguments or ""
            try:
                arguments: dict[str, Any] | str = json.loads(raw) if raw.strip() else {}
            except ValueError:
                arguments = raw
            if not isinstance(arguments, dict):
                arguments = raw
            calls.append(ToolCall(call_id, function.name, arguments))
            native.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": function.name, "arguments": raw},
                }
            )
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if native:
            message["tool_calls"] = native
        if completion.usage is not None:
            usage = Usage(
                completion.usage.prompt_tokens or 0, completion.usage.completion_tokens or 0
            )
        else:  # a server that reports no usage is accounted by a pessimistic estimate
            usage = Usage(estimate_input_tokens(messages), estimate_input_tokens(message))
        return Turn(
            text=text,
            tool_calls=calls,
            usage=usage,
            response_model=completion.model or self.model,
            message=message,
            finish_reason=choice.finish_reason or "",
            request_id=getattr(completion, "_request_id", None) or completion.id or "",
        )

    def append_assistant(self, messages: list[dict[str, Any]], turn: Turn) -> None:
        messages.append(turn.message)

    def append_tool_results(
        self, messages: list[dict[str, Any]], results: list[tuple[ToolCall, str, bool]]
    ) -> None:
        messages.extend(
            {"role": "tool", "tool_call_id": call.id, "content": content}
            for call, content, _ in results
        )

    def append_user(self, messages: list[dict[str, Any]], text: str) -> None:
        messages.append({"role": "user", "content": text})

    def append_repair(self, messages: list[dict[str, Any]], turn: Turn, problems: str) -> None:
        # Every tool call must be answered before the conversation may go on.
        self.append_tool_results(
            messages,
            [(call, "Not executed: final answer expected.", True) for call in turn.tool_calls],
        )
        self.append_user(
            messages,
            f"Your final answer was invalid: {problems}. Reply again with "
            "only the corrected JSON object matching the schema.",
        )


class OpenAIProvider(LLMProvider):
    """Provider of kind ``openai`` (any OpenAI-compatible chat-completions server)."""

    def dialect(self, model: str) -> Dialect:
        return OpenAIDialect(self.config, model)
