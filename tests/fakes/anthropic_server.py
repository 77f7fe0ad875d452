"""A local Anthropic-compatible ``/v1/messages`` server for tests (see tests/fakes).

It checks what the real API checks: the key (``x-api-key`` or a bearer token) and the
``anthropic-version`` header, that the first message is from the user, that every
``tool_use`` is answered by a ``tool_result`` in the next user message, that used tools are
declared in ``tools``, and it honours a forced ``tool_choice``. Answers carry ``usage`` and a
``request-id`` header; overload is a 529 ``overloaded_error``.
"""

from __future__ import annotations

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

FINAL = "final_answer"


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else content or []


def _text_of(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content)
    return str(content or "")


def check_conversation(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    declared = {tool["name"] for tool in body.get("tools") or []}
    pending: set[str] = set()
    for message in messages:
        blocks = _blocks(message)
        if message["role"] == "user":
            answered = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
            if pending - answered:
                return (
                    "messages: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {sorted(pending - answered)}"
                )
            pending = set()
        else:
            uses = [b for b in blocks if b.get("type") == "tool_use"]
            if any(b["name"] not in declared for b in uses):
                return "Requests which include `tool_use` blocks must define tools."
            if any(b.get("type") == "text" and not b.get("text") for b in blocks):
                return "messages: text content blocks must be non-empty"
            pending = {b["id"] for b in uses}
    return ""


class FakeAnthropicServer(FakeServer):
    @property
    def base_url(self) -> str:
        return self.root

    def view(self, body: dict[str, Any]) -> View:
        messages = body.get("messages", [])
        user = _text_of({"content": _blocks(messages[0])}) if messages else ""
        calls = [
            (b["name"], b.get("input") or {})
            for m in messages
            if m["role"] == "assistant"
            for b in _blocks(m)
            if b.get("type") == "tool_use"
        ]
        results = [
            _text_of(b)
            for m in messages
            if m["role"] == "user"
            for b in _blocks(m)
            if b.get("type") == "tool_result"
        ]
        offered = [t["name"] for t in body.get("tools") or [] if t["name"] != FINAL]
        forced = (body.get("tool_choice") or {}).get("type") == "tool"
        final_schema: dict[str, Any] = next(
            (t["input_schema"] for t in body.get("tools") or [] if t["name"] == FINAL), {}
        )
        return View(
            user_prompt=user,
            offered=offered,
            final_mode=forced,
            calls_made=calls,
            tool_results=results,
            can_spawn="spawn" in final_schema.get("properties", {}),
        )

    def respond(self, handler: BaseHTTPRequestHandler, recorded: Recorded, behaviour: str) -> None:
        headers = {
            "request-id": f"req_{uuid.uuid4().hex[:20]}",
            "anthropic-ratelimit-requests-limit": "4000",
        }
        # anthropic 2.x sends the key as a bearer token; older clients use x-api-key.
        given = recorded.headers.get("x-api-key") or recorded.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        if self.api_key and given != self.api_key:
            self.send(
                handler,
                401,
                _error("authentication_error", f"invalid x-api-key {masked(given)}"),
                headers,
            )
            return
        if not recorded.headers.get("anthropic-version"):
            self.send(
                handler,
                400,
                _error("invalid_request_error", "anthropic-version header is required"),
                headers,
            )
            return
        if recorded.path != "/v1/messages" or not isinstance(recorded.body, dict):
            self.send(handler, 404, _error("not_found_error", "Not found"), headers)
            return
        body = recorded.body
        if behaviour in ("429", "500", "503", "529"):
            kinds = {
                "429": "rate_limit_error",
                "529": "overloaded_error",
                "500": "api_error",
                "503": "api_error",
            }
            if behaviour in ("429", "529"):
                headers["retry-after"] = self.retry_after
            self.send(handler, int(behaviour), _error(kinds[behaviour], "fake"), headers)
            return
        if behaviour == "garbage":
            self.send(handler, 200, b"<html>not json</html>", headers)
            return
        problem = check_conversation(body)
        if problem:
            self.send(handler, 400, _error("invalid_request_error", problem), headers)
            return
        view = self.view(body)
        content: list[dict[str, Any]]
        calls = [] if behaviour in ("malformed", "invalid") else brain_next_calls(view)
        if behaviour == "malformed":
            content, stop = [{"type": "text", "text": MALFORMED}], "end_turn"
        elif behaviour == "invalid":
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:16]}",
                    "name": FINAL,
                    "input": INVALID,
                }
            ]
            stop = "tool_use"
        elif calls:
            content = [{"type": "text", "text": "Let me look."}] + [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:16]}",
                    "name": name,
                    "input": args,
                }
                for name, args in calls
            ]
            stop = "tool_use"
        elif self.prose and not view.final_mode:
            content, stop = [{"type": "text", "text": "I have read what I need."}], "end_turn"
        else:
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:16]}",
                    "name": FINAL,
                    "input": brain_answer(view),
                }
            ]
            stop = "tool_use"
        input_tokens, output_tokens = usage_for(body, content)
        self.send(
            handler,
            200,
            {
                "id": f"msg_{uuid.uuid4().hex[:20]}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "unknown"),
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
            headers,
        )
