"""The one small interface every model provider implements.

A provider turns an ``AgentRequest`` (who the agent is, what it may look at, which tools it may
use) into an ``AgentResult`` (validated findings, sub-agent requests, token usage). Providers never
touch the database: the worker persists what they return. Failures are ``ProviderError`` with
``permanent`` saying whether a retry could help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from agents.snapshot import Snapshot

Severity = Literal["info", "low", "medium", "high", "critical"]


class AgentFinding(BaseModel):
    """One finding as a provider reports it, validated at the boundary (output is untrusted)."""

    title: str = Field(min_length=1, max_length=200)
    detail: str = Field(default="", max_length=4000)
    severity: Severity = "medium"
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    path: str = Field(default="", max_length=500)
    line_start: int | None = Field(default=None, ge=0)
    line_end: int | None = Field(default=None, ge=0)
    evidence: str = Field(default="", max_length=2000)
    rule: str = Field(default="", max_length=100)
    # MITRE CWE id where one applies. Not yet persisted by the worker (the detail text names it).
    cwe: int | None = Field(default=None, ge=1)


class SpawnOut(BaseModel):
    """A request to start a sub-agent on a narrower scope, with the reason it is needed."""

    scope: dict[str, Any]
    why: str = Field(min_length=1, max_length=500)
    lens: str | None = None
    # The part of the spawner's own allowance to give it, in USD (at most what is left); None:
    # the run's ``budget_split`` rule decides.
    budget_usd: float | None = Field(default=None, ge=0, le=100_000)


class AgentOutput(BaseModel):
    """The structured final answer every agent must produce."""

    summary: str = Field(default="", max_length=8000)
    findings: list[AgentFinding] = Field(default_factory=list, max_length=200)
    spawn: list[SpawnOut] = Field(default_factory=list, max_length=50)
    # Step-specific structured results (e.g. a document summary a synthesis step consumes).
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass
class AgentRequest:
    """Everything one agent step needs. ``scope`` is e.g. {"files": [...]} or {"document": path}."""

    run_id: int
    task_id: int
    task_key: str
    step: str
    lens: str
    scope: dict[str, Any]
    model: str
    snapshot: Snapshot
    allowed_tools: list[str] = field(default_factory=list)
    max_tokens: int = 2048
    depth: int = 0
    can_spawn: bool = False
    latency_ms: int = 0
    timeout_s: float = 60.0
    # Extra, playbook-specific inputs (e.g. child summaries for a synthesis step).
    inputs: dict[str, Any] = field(default_factory=dict)
    # The runtime's services for this agent (None only in unit tests of pure providers).
    context: AgentContext | None = None
    # Per-spec limits the provider must respect.
    max_steps: int = 8
    max_children: int = 8
    # The agent's identity on every span it makes (``gen_ai.agent.name``), and its run's
    # conversation id (``gen_ai.conversation.id``).
    agent_name: str = ""
    conversation_id: str = ""


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens


@dataclass
class AgentResult:
    output: AgentOutput
    usage: Usage
    model: str
    provider: str
    # One dict per model call / tool call, for spans and the audit log (no secrets, no raw prompt
    # unless content capture is opted in).
    steps: list[dict[str, Any]] = field(default_factory=list)


class ProviderError(Exception):
    """A provider failure. ``permanent`` failures fail the Task; others are retried with backoff."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        error_type: str = "provider_error",
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        # A trace's ``error.type``: low-cardinality and specific (the HTTP status, "timeout",
        # "connection_error", …), where the class name would say ProviderError for all of them.
        self.error_type = error_type


class RateLimited(ProviderError):
    """Our own shared rate limit needs a wait: not a failure of the call, so the worker retries
    later without counting an attempt (and without holding a concurrency slot meanwhile)."""

    def __init__(self, message: str, retry_after: float, error_type: str = "rate_limited") -> None:
        super().__init__(message, permanent=False, retry_after=retry_after, error_type=error_type)


class ProviderRateLimited(RateLimited):
    """The provider answered 429 (slow down): a wait like our own limiter's, but one that a
    provider may repeat forever, so the worker gives up after a bounded number of them."""


class Provider(Protocol):
    name: str
    is_llm: bool

    def run_agent(self, request: AgentRequest) -> AgentResult: ...

    def estimate_tokens(self, request: AgentRequest) -> tuple[int, int]:
        """(input, output) token estimate used only to reserve budget, with a safety margin."""
        ...


class BudgetExhausted(Exception):
    """The run's budget cannot cover the next call: the agent stops without calling."""


class AllowanceExhausted(BudgetExhausted):
    """Only a subtree's allowance ran out (``scope``, e.g. a folder's slice of the run): its
    agents stop, the rest of the run goes on."""

    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope


class AgentCancelled(Exception):
    """The run was cancelled: the agent stops at its next step."""


@dataclass(frozen=True)
class ModelStep:
    """A completed model call, for ``AgentContext.after_call``: ``data`` is what a replay of the
    step returns, ``name`` the step's name ("" = ``chat {model}``)."""

    model: str
    usage: Usage
    data: dict[str, Any]
    seconds: float
    name: str = ""


@dataclass(frozen=True)
class ToolStep:
    """A tool call (refusals included: ``result["refused"]``), for ``AgentContext.tool_step``."""

    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]
    seconds: float


class AgentContext(Protocol):
    """What the runtime offers a provider during one agent (implemented in
    runs/engine/runtime.py).

    Steps are numbered from 0 in the order the agent takes them. A redelivered agent replays
    stored steps instead of paying for them again: call ``replay(index)`` first and, when it
    returns data, use it instead of calling the model or tool.
    """

    def replay(self, index: int) -> dict[str, Any] | None:
        """The stored ``data`` of step ``index`` if it already completed, else None."""
        ...

    def before_call(self, index: int, *, model: str, input_tokens: int, output_tokens: int) -> int:
        """Reserve budget for one model call of at most ``input_tokens`` in and ``output_tokens``
        out, and return the output tokens the call may produce: ``output_tokens``, or fewer near
        the end of the budget (the call must stop there, so it never costs more than it
        reserved). Raises BudgetExhausted, AgentCancelled, or ProviderError(permanent=False,
        retry_after=…) when it must wait (the worker frees its slot and retries later)."""
        ...

    def after_call(self, index: int, call: ModelStep) -> None:
        """Persist a completed model call as a step, price it and settle the budget."""
        ...

    def release_call(self, index: int) -> None:
        """Drop the reservation of a call that failed before any usage was billed."""
        ...

    def tool_step(self, index: int, tool: ToolStep) -> None:
        """Persist a tool call as a step and event."""
        ...

    def check_cancelled(self) -> None:
        """Raise AgentCancelled if the run was cancelled."""
        ...
