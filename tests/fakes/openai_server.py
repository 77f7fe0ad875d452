"""A local OpenAI-compatible ``/v1/chat/completions`` and ``/v1/embeddings`` server for tests
(see tests/fakes).

It checks what the real API checks and the harness could get wrong: the bearer key, that every
assistant ``tool_calls`` entry is answered by a ``tool`` message with its id before the
conversation goes on, and that a ``response_format`` json_schema is well formed. Answers carry
``usage``, an ``x-request-id`` header and rate-limit headers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes import (
    INVALID,
    MALFORMED,
    FakeServer,
    Recorded,
    View,
    brain_answer,
    brain_next_calls,
    masked,
    usage_for,
)


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def check_conversation(messages: list[dict[str, Any]]) -> str:
    """'' when the tool-call protocol holds, else the problem (what the real API says)."""
    pending: set[str] = set()
    for message in messages:
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return "messages with role 'tool' must be a response to a preceding tool_calls"
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(pending)}"
            )
        if role == "assistant":
            pending = {call["id"] for call in message.get("tool_calls") or []}
    return ""


# Words the fake embedding model treats as one concept, so tests can show a semantic embedder
# merging what shared wording alone would not.
SYNONYMS = {"sanitization": "validation", "sanitized": "validation", "validated": "validation"}


def fake_embedding(text: str, dims: int = 64) -> list[float]:
    """A deterministic bag-of-concepts vector: each word (after ``SYNONYMS``) adds 1 to the
    dimension its SHA-256 picks."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z0-9_]+", text.lower()):
        word = SYNONYMS.get(word, word)
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dims] += 1.0
    return vector


def embeddings_answer(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input", [])
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    return {
        "object": "list",
        "model": body.get("model", "unknown"),
        "data": [
            {"object": "embedding", "index": i, "embedding": fake_embedding(text)}
            for i, text in enumerate(inputs)
        ],
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }


class FakeOpenAIServer(FakeServer):
    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def view(self, body: dict[str, Any]) -> View:
        messages = body.get("messages", [])
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        calls = [
            (c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
            for m in messages
            if m["role"] == "assistant"
            for c in m.get("tool_calls") or []
        ]
        results = [m["content"] for m in messages if m["role"] == "tool"]
        offered = [t["function"]["name"] for t in body.get("tools") or []]
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        return View(
            user_prompt=user,
            offered=offered,
            final_mode="response_format" in body or not offered,
            calls_made=calls,
            tool_results=results,
            can_spawn="spawn" in schema.get("properties", {}) or "spawn_subagent" in offered,
        )

    def respond(self, handler: BaseHTTPRequestHandler, recorded: Recorded, behaviour: str) -> None:
        request_id = f"req_{uuid.uuid4().hex[:16]}"
        headers = {
            "x-request-id": request_id,
            "openai-processing-ms": "12",
            "x-ratelimit-limit-requests": "10000",
        }
        if self.api_key and recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            given = recorded.headers.get("authorization", "").removeprefix("Bearer ")
            # Like OpenAI: the message echoes part of the wrong key.
            self.send(
                handler,
                401,
                _error(
                    f"Incorrect API key provided: {masked(given)}.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
                headers,
            )
            return
        if recorded.path == "/v1/embeddings" and isinstance(recorded.body, dict):
            self.send(handler, 200, embeddings_answer(recorded.body), headers)
            return
        if recorded.path != "/v1/chat/completions" or not isinstance(recorded.body, dict):
            self.send(handler, 404, _error("Unknown endpoint.", "invalid_request_error"), headers)
            return
        body = recorded.body
        if behaviour in ("429", "500", "503", "529"):
            status = int(behaviour)
            if status == 429:
                headers["retry-after"] = self.retry_after
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            self.send(handler, status, _error(f"fake {status}", kind), headers)
            return
        if behaviour == "garbage":
            self.send(handler, 200, b"<html>not json</html>", headers)
            return
        problem = check_conversation(body.get("messages", []))
        fmt = body.get("response_format")
        if fmt and not (fmt.get("type") == "json_schema" and fmt["json_schema"].get("schema")):
            problem = "Invalid response_format."
        if problem:
            self.send(handler, 400, _error(problem, "invalid_request_error"), headers)
            return
        view = self.view(body)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        calls = [] if behaviour in ("malformed", "invalid") else brain_next_calls(view)
        calls = self.spawn_calls(view) + calls if calls else calls
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for name, args in calls
            ]
            finish = "tool_calls"
        elif behaviour == "malformed":
            message["content"], finish = MALFORMED, "stop"
        elif behaviour == "invalid":
            message["content"], finish = json.dumps(INVALID), "stop"
        elif self.prose and not view.final_mode:
            message["content"], finish = "I have read everything I need.", "stop"
        else:
            message["content"], finish = json.dumps(brain_answer(view)), "stop"
        prompt_tokens, completion_tokens = usage_for(body, message)
        self.send(
            handler,
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "unknown"),
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            headers,
        )
