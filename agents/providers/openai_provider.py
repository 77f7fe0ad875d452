"""OpenAI-compatible chat completions through the official ``openai`` SDK.

Works with OpenAI, Azure OpenAI (its ``/openai/v1/`` endpoint), vLLM, Ollama and llama.cpp's
server by changing the base URL. Choices made for that portability (docs/providers.md):

* Tool turns send ``tools`` and no ``tool_choice`` (Ollama ignores it; vLLM needs server flags
  for anything but "auto", which is also the API default).
* The final answer comes from a turn with ``response_format`` json_schema (``strict``) and no
  tools: all four servers enforce json_schema, while mixing it with tools breaks tool-call
  parsing on vLLM/llama.cpp. A model that already answers the tool phase with JSON skips that
  extra turn. The schema is strict-compatible (see ``agents.providers.loop.output_schema``) and the
  answer is validated with pydantic regardless, since local servers may not enforce it.
* A client is built per call with the key read from the environment then, ``max_retries=0``
  (the harness owns retries) and an explicit timeout.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import openai

from agents.contract import ProviderError, ProviderRateLimited, Usage
from agents.providers.loop import Dialect, LLMProvider, Phase, ToolCall, Turn
from agents.providers.prompt import (
    ToolSpec,
    estimate_input_tokens,
    retry_after_seconds,
    safe_message,
)
from agents.providers.registry import MissingApiKey, ProviderConfig

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


def map_openai_error(
    exc: Exception, config: ProviderConfig, secret: str, timeout: float
) -> ProviderError:
    """An SDK exception as a ProviderError whose message holds no secret (the server's own
    message is kept, masked: OpenAI echoes part of a wrong key in its 401 text)."""
    where = f"provider {config.name!r}"
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"{where}: no response within {timeout:g}s", permanent=False)
    if isinstance(exc, openai.APIConnectionError):
        host = urlsplit(config.resolved_base_url() or "https://api.openai.com").netloc
        return ProviderError(f"{where}: cannot connect to {host}", permanent=False)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = safe_message(exc.message, secret)
        request_id = f" (request id {exc.request_id})" if exc.request_id else ""
        transient = status >= 500 or status in TRANSIENT_STATUSES
        wait = retry_after_seconds(exc.response.headers)
        if status == 429 and exc.code != "insufficient_quota":
            # The server asks us to slow down: a wait like our own limiter's, not a failed
            # attempt (else a busy provider fails agents). An exhausted quota stays an error.
            return ProviderRateLimited(
                f"{where}: HTTP 429: {detail}{request_id}", retry_after=wait or 0.0
            )
        return ProviderError(
            f"{where}: HTTP {status}: {detail}{request_id}",
            permanent=not transient,
            retry_after=retry_after_seconds(exc.response.headers),
        )
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        return ProviderError(f"{where}: the server's response could not be read", permanent=False)
    return ProviderError(f"{where}: {safe_message(str(exc), secret)}", permanent=True)


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
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.config.max_tokens_param: max_tokens,
        }
        if phase == "tools" and tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        else:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "agent_output", "strict": True, "schema": schema},
            }
        secret = ""
        try:
            secret = self.config.api_key()
            client = openai.OpenAI(
                api_key=secret,
                base_url=self.config.resolved_base_url(),
                max_retries=0,
                timeout=timeout,
                default_headers=self.config.headers or None,
            )
            completion = client.chat.completions.create(**kwargs)
        except MissingApiKey as exc:
            raise ProviderError(str(exc), permanent=True) from None
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise map_openai_error(exc, self.config, secret, timeout) from None
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
