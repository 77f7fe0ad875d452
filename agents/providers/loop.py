"""The agent loop shared by every LLM provider kind (OpenAI-compatible and Anthropic).

One agent = a scoped system prompt, then model turns that may call tools, then one structured
final answer validated with pydantic. The provider modules only translate between this loop and
their SDK (a ``Dialect``); everything that must hold for every provider lives here:

* **Steps.** Every model call and every tool call is one step, numbered from 0 in order. Before
  each, ``context.replay(index)``: a stored step is reused (a redelivered agent resumes without
  paying again), otherwise the call happens and is persisted with ``after_call``/``tool_step``.
  Replayed turns carry the native assistant message, so the conversation is rebuilt exactly.
* **Limits.** At most ``request.max_steps`` model turns may use tools; then one final-answer
  turn and at most one repair turn: never more than ``max_steps + 2`` model calls. Before a real
  call: the provider/model rate limit (Redis, shared by all workers; a needed wait raises
  ``ProviderError(permanent=False, retry_after=…)`` so the worker frees its slot instead of
  sleeping in it), then ``before_call`` with an upper-bound token estimate (chars/3 with a 25 %
  margin for input, ``max_tokens`` for output), which returns the output cap the call is sent
  with (less than ``max_tokens`` only near the end of the budget). A call that fails is
  ``release_call``-ed.
* **Final answer.** Prose at the end of the tool phase triggers a final turn in the dialect's
  structured mode (``response_format`` json_schema, or a forced ``final_answer`` tool). Invalid
  output gets one repair turn, then ``ProviderError(permanent=True)``: a clean Task failure.
* **Tools.** Executed through ``agents.tools.call_tool`` (allow-list and snapshot confinement
  there); a refusal is stored as a step and answered to the model as refused. ``spawn_subagent``
  never executes: it is collected into ``AgentOutput.spawn`` for the engine to decide.
* **Telemetry.** A ``chat {model}`` CLIENT span per real model call and an ``execute_tool
  {name}`` span per real tool call, with ``gen_ai.*`` and ``harness.*`` attributes; message
  content only when ``settings.HARNESS_CAPTURE_CONTENT`` is on.
* **Secrets.** Error messages pass through ``safe_message``: the key, anything secret-looking
  from the environment and key-shaped tokens are masked.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agents import semconv
from agents import spans as content
from agents.contract import (
    AgentOutput,
    AgentRequest,
    AgentResult,
    ModelStep,
    ProviderError,
    RateLimited,
    SpawnOut,
    ToolStep,
)
from agents.contract import Usage as TokenUsage
from agents.genai_metrics import record_call
from agents.limits import RateLimiter
from agents.pricing import price_call
from agents.providers.dialect import CallSpec, Dialect, Phase, ToolCall, Turn
from agents.providers.prompt import (
    SPAWN_ANSWER,
    SPAWN_TOOL,
    build_system_prompt,
    build_user_prompt,
    estimate_input_tokens,
    looks_like_json,
    offered_can_spawn,
    offered_tools,
    output_schema,
    parse_output,
    safe_message,
)
from agents.providers.registry import MissingApiKey, ProviderConfig, UnknownModel
from agents.spans import agent_identity, set_cost
from agents.tools import ToolResult, call_tool
from harness_site.redis_client import get_redis
from harness_site.telemetry import get_tracer


@dataclass
class AgentLoop:
    """Runs one agent with one dialect. ``provider`` is the configured provider (name, kind)."""

    request: AgentRequest
    dialect: Dialect
    provider: ProviderConfig
    model: str
    timeout: float
    index: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    steps: list[dict[str, Any]] = field(default_factory=list)
    spawns: list[SpawnOut] = field(default_factory=list)
    system: str = ""
    system_apart: bool = False

    def __post_init__(self) -> None:
        self.context = self.request.context
        self.tools = offered_tools(self.request)
        self.schema = output_schema(offered_can_spawn(self.request), self.request.step)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> AgentResult:
        names = [tool.name for tool in self.tools]
        system = build_system_prompt(self.request, names, self.dialect.final_instructions)
        messages = self.dialect.start(system, build_user_prompt(self.request))
        # Anthropic takes the system prompt beside the messages; OpenAI's is their first one.
        self.system = system
        self.system_apart = not any(m.get("role") == "system" for m in messages)
        phase: Phase = "tools" if self.tools else "final"
        tool_turns, repaired = 0, False
        while True:
            turn = self._model_step(messages, phase)
            self.dialect.append_assistant(messages, turn)
            if phase == "tools" and turn.final is None and turn.tool_calls:
                tool_turns += 1
                results = [(call, *self._tool_step(call)) for call in turn.tool_calls]
                self.dialect.append_tool_results(messages, results)
                if tool_turns >= self.request.max_steps:
                    phase = "final"
                    self.dialect.append_user(
                        messages,
                        "Step limit reached: no more tools. " + self.dialect.final_instructions,
                    )
                continue
            if phase == "tools" and turn.final is None and not looks_like_json(turn.text):
                phase = "final"
                self.dialect.append_user(messages, self.dialect.final_instructions)
                continue
            answer = turn.final if turn.final is not None else turn.text
            output, problems = parse_output(answer, self.request.step)
            if output is not None:
                return self._result(output)
            if repaired:
                raise ProviderError(
                    f"{self.provider.name} model {self.model} gave an invalid final answer "
                    f"after one repair round: {safe_message(problems)}",
                    permanent=True,
                    error_type="invalid_output",
                )
            repaired, phase = True, "final"
            self.dialect.append_repair(messages, turn, problems)

    def _result(self, output: AgentOutput) -> AgentResult:
        seen = {json.dumps(s.model_dump(), sort_keys=True) for s in output.spawn}
        extra = [s for s in self.spawns if json.dumps(s.model_dump(), sort_keys=True) not in seen]
        spawn = [*output.spawn, *extra][:50] if offered_can_spawn(self.request) else []
        output = output.model_copy(update={"spawn": spawn})
        return AgentResult(
            output=output,
            usage=self.usage,
            model=self.model,
            provider=self.provider.name,
            steps=self.steps,
        )

    # -- model calls -------------------------------------------------------------------------
    def _model_step(self, messages: list[dict[str, Any]], phase: Phase) -> Turn:
        index, ctx = self.index, self.context
        self.index += 1
        stored = ctx.replay(index) if ctx else None
        if stored is not None:
            turn = Turn.from_data(stored)
            self.usage.add(turn.usage)
            self.steps.append(
                {"index": index, "kind": "model", "model": self.model, "replayed": True}
            )
            return turn
        tools = self.tools  # a dialect may leave them out of a final turn (OpenAI does)
        estimate_in = estimate_input_tokens(messages, [asdict(t) for t in tools], self.schema)
        estimate_out = max_tokens = self.request.max_tokens
        if ctx:
            ctx.check_cancelled()
        self._rate_limit(estimate_in + estimate_out)
        if ctx:
            # Near the end of the budget the grant may pay for less than max_tokens: the call
            # stops there, so it never costs more than it reserved.
            max_tokens = ctx.before_call(
                index, model=self.model, input_tokens=estimate_in, output_tokens=estimate_out
            )
        started = time.monotonic()
        ask = CallSpec(phase, tools, self.schema, max_tokens, self.timeout)
        attributes = self._chat_attributes(ask)
        with get_tracer().start_as_current_span(
            f"chat {self.model}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            try:
                turn = self.dialect.call(messages, ask)
            except BaseException as exc:
                if ctx:
                    ctx.release_call(index)
                span.set_status(Status(StatusCode.ERROR, safe_message(str(exc))[:200]))
                span.set_attribute(semconv.ERROR_TYPE, content.error_type(exc))
                record_call(
                    attributes, time.monotonic() - started, error_type=content.error_type(exc)
                )
                raise
            seconds = time.monotonic() - started
            self._annotate_chat(span, messages, turn)
        record_call(
            attributes, seconds, usage=turn.usage, response_model=turn.response_model or self.model
        )
        self._correct_rate(estimate_in + estimate_out, turn.usage)
        self.usage.add(turn.usage)
        if ctx:
            ctx.after_call(
                index,
                ModelStep(self.model, turn.usage, turn.to_data(), seconds, f"chat {self.model}"),
            )
        self.steps.append(
            {
                "index": index,
                "kind": "model",
                "model": self.model,
                "response_model": turn.response_model,
                "seconds": round(seconds, 3),
                "input_tokens": turn.usage.input_tokens,
                "output_tokens": turn.usage.output_tokens,
                "replayed": False,
            }
        )
        return turn

    def _chat_attributes(self, ask: CallSpec) -> dict[str, Any]:
        """What a chat span knows before the call: who is asked, where, and for what."""
        attributes: dict[str, Any] = {
            semconv.OPERATION: semconv.OP_CHAT,
            semconv.PROVIDER: self.provider.name,
            **agent_identity(self.request),
            semconv.REQUEST_MODEL: self.model,
            semconv.REQUEST_MAX_TOKENS: ask.max_tokens,
            # The final phase must answer the output schema; a tools turn may answer anything.
            semconv.OUTPUT_TYPE: "json" if ask.phase == "final" else "text",
            **content.server_attributes(self.provider.server_url()),
        }
        if settings.HARNESS_CAPTURE_CONTENT:  # opt-in, as the conventions have them
            if ask.tools:
                attributes[semconv.TOOL_DEFINITIONS] = content.tool_definitions(ask.tools)
            if self.system_apart:
                attributes[semconv.SYSTEM_INSTRUCTIONS] = content.system_instructions(self.system)
        return attributes

    def _annotate_chat(self, span: trace.Span, messages: list[dict[str, Any]], turn: Turn) -> None:
        price = price_call(self.provider.kind, self.provider.name, self.model, turn.usage)
        span.set_attribute(semconv.RESPONSE_MODEL, turn.response_model or self.model)
        span.set_attribute(semconv.INPUT_TOKENS, turn.usage.input_tokens)
        span.set_attribute(semconv.OUTPUT_TOKENS, turn.usage.output_tokens)
        span.set_attribute(
            semconv.FINISH_REASONS, [content.normal_finish_reason(turn.finish_reason)]
        )
        set_cost(span, price.cost_usd, price.unpriced)
        if turn.request_id:
            span.set_attribute(semconv.RESPONSE_ID, turn.request_id)
        if settings.HARNESS_CAPTURE_CONTENT:
            span.set_attribute(semconv.INPUT_MESSAGES, content.input_messages(messages))
            span.set_attribute(
                semconv.OUTPUT_MESSAGES,
                content.output_messages(turn.text, turn.tool_calls, turn.finish_reason),
            )

    def _limiter(self) -> Any:
        if not (self.provider.rpm or self.provider.tpm):
            return None
        return RateLimiter(
            get_redis(),
            f"{self.provider.name}:{self.model}",
            self.provider.rpm,
            self.provider.tpm,
            key_prefix=settings.HARNESS_REDIS_PREFIX,
        )

    def _rate_limit(self, tokens: int) -> None:
        """Take a permit or raise a transient ProviderError carrying the wait (never sleep)."""
        import redis

        try:
            limiter = self._limiter()
            wait = limiter.try_acquire(tokens) if limiter else 0.0
        except redis.RedisError as exc:
            raise ProviderError(
                f"rate limiter unavailable ({type(exc).__name__})",
                permanent=False,
                retry_after=2.0,
                error_type="rate_limiter_unavailable",
            ) from None
        if wait > 0:
            raise RateLimited(
                f"rate limit of {self.provider.name}/{self.model} reached; retry in {wait:.1f}s",
                retry_after=wait,
            )

    def _correct_rate(self, estimate: int, usage: TokenUsage) -> None:
        import redis

        try:
            limiter = self._limiter()
            if limiter and self.provider.tpm:
                limiter.record_tokens(usage.input_tokens + usage.output_tokens - estimate)
        except redis.RedisError:
            pass  # the estimate already counted; a lost correction only makes the limit stricter

    # -- tool calls --------------------------------------------------------------------------
    def _tool_step(self, call: ToolCall) -> tuple[str, bool]:
        """Run (or replay) one tool call; returns (content for the model, is_error)."""
        index, ctx = self.index, self.context
        self.index += 1
        stored = ctx.replay(index) if ctx else None
        if stored is not None:
            result = stored.get("result", stored)
            if call.name == SPAWN_TOOL and not result.get("refused"):
                self._spawn(call)  # pure: re-collect the request the stored step answered
            self.steps.append(
                {
                    "index": index,
                    "kind": "tool",
                    "name": call.name,
                    "replayed": True,
                    "refused": bool(result.get("refused")),
                }
            )
            return str(result.get("content", "")), not result.get("ok", False)
        if ctx:
            ctx.check_cancelled()
        started = time.monotonic()
        name = call.name[:64]
        # No provider name: tools run here, in the harness, not at the model's provider.
        attributes = {
            semconv.OPERATION: semconv.OP_TOOL,
            **agent_identity(self.request),
            semconv.TOOL_NAME: name,
            semconv.TOOL_CALL_ID: call.id[:100],
            semconv.TOOL_TYPE: "function",  # every tool runs here, in the harness
        }
        with get_tracer().start_as_current_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            if call.name == SPAWN_TOOL and offered_can_spawn(self.request):
                result = self._spawn(call)
            elif call.name == SPAWN_TOOL:
                result = ToolResult(
                    ok=False,
                    refused=True,
                    reason="this agent may not spawn",
                    content=f"Tool call {SPAWN_TOOL!r} was refused: this agent "
                    "may not spawn sub-agents.",
                )
            else:
                allowed = [n for n in self.request.allowed_tools if n != SPAWN_TOOL]
                result = call_tool(
                    call.name, call.arguments, snapshot=self.request.snapshot, allowed=allowed
                )
            span.set_attribute("harness.tool.refused", result.refused)
            span.set_attribute("harness.tool.ok", result.ok)
            if settings.HARNESS_CAPTURE_CONTENT:
                content.set_tool_content(span, call.arguments, str(result.content))
            if result.refused or not result.ok:
                span.set_status(Status(StatusCode.ERROR, result.reason[:200]))
                span.set_attribute(
                    semconv.ERROR_TYPE, "tool_refused" if result.refused else "tool_error"
                )
        seconds = time.monotonic() - started
        arguments = (
            call.arguments
            if isinstance(call.arguments, dict)
            else {"_raw": str(call.arguments)[:2000]}
        )
        if ctx:
            ctx.tool_step(
                index, ToolStep(name, arguments, {**result.to_dict(), "call_id": call.id}, seconds)
            )
        self.steps.append(
            {
                "index": index,
                "kind": "tool",
                "name": name,
                "replayed": False,
                "refused": result.refused,
                "seconds": round(seconds, 3),
            }
        )
        return result.content, not result.ok

    def _spawn(self, call: ToolCall) -> Any:
        if len(self.spawns) >= self.request.max_children:
            return ToolResult(
                ok=False,
                refused=True,
                reason="too many sub-agents",
                content=f"Refused: at most {self.request.max_children} sub-agents.",
            )
        arguments = call.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return ToolResult(
                    ok=False, content="Bad arguments: not valid JSON.", reason="bad arguments"
                )
        output, problems = parse_output({"spawn": [arguments]})
        if output is None or not output.spawn or not output.spawn[0].scope:
            problems = problems or "empty scope"
            return ToolResult(
                ok=False,
                reason="bad arguments",
                content=f"Bad arguments for {SPAWN_TOOL}: {problems}",
            )
        self.spawns.append(output.spawn[0])
        return ToolResult(ok=True, content=SPAWN_ANSWER)


class LLMProvider:
    """Base of the SDK-backed providers: resolves the model and timeout, then runs the loop."""

    is_llm = True

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        self.kind = config.kind  # what agents.pricing looks prices up by
        self.concurrency = config.concurrency  # global cap, enforced by the worker's semaphore

    def default_model(self) -> str:
        return self.config.default_model

    def dialect(self, model: str) -> Dialect:
        raise NotImplementedError

    def run_agent(self, request: AgentRequest) -> AgentResult:
        model = request.model or self.config.default_model
        try:
            self.config.check_model(model)
            self.config.api_key()  # fail before any step when the key is missing
        except (UnknownModel, MissingApiKey) as exc:
            raise ProviderError(str(exc), permanent=True) from None
        timeout = self.config.timeout_s or request.timeout_s
        return AgentLoop(request, self.dialect(model), self.config, model, timeout).run()

    def estimate_tokens(self, request: AgentRequest) -> tuple[int, int]:
        """First call's (input, output) upper-bound estimate, for budget reservations."""
        tools = [asdict(t) for t in offered_tools(request)]
        system = build_system_prompt(request, [t["name"] for t in tools], "")
        return (
            estimate_input_tokens(system, build_user_prompt(request), tools),
            request.max_tokens,
        )
