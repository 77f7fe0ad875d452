"""The API's request and response shapes (pydantic, via ninja): what the OpenAPI schema shows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field


class AgentCounts(Schema):
    total: int
    succeeded: int
    failed: int
    skipped: int


class Tokens(Schema):
    input: int
    output: int


class RunOut(Schema):
    id: int
    uid: str
    title: str
    playbook: str
    status: str
    status_reason: str
    target: str
    target_kind: str
    provider: str
    model: str
    launched_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    agents: AgentCounts
    findings: int
    cost_usd: float
    budget_usd: float | None
    budget_tokens: int | None
    tokens: Tokens
    url: str = Field(description="The run's page in the dashboard.")


class Limits(Schema):
    max_concurrency: int
    max_depth: int
    max_agents: int
    max_children: int
    budget_usd: float | None
    budget_tokens: int | None


class InFlight(Schema):
    running: int
    queued: int
    retrying: int
    awaiting_approval: int
    cap: int
    reason: str = Field(description="Why fewer agents run than the cap allows, if they do.")


class Forecast(Schema):
    spent_usd: float
    forecast_cost_usd: float | None
    forecast_finish: datetime | None
    over_budget: bool
    remaining_agents: int
    agents_per_minute: float | None


class RunDetail(RunOut):
    limits: Limits
    in_flight: InFlight
    forecast: Forecast
    statuses: dict[str, int] = Field(description="Agents by status.")
    report_version: int | None = Field(description="The latest report version, if any.")
    pending_approvals: int
    duration_seconds: float | None
    last_seq: int = Field(description="The newest event's seq: follow the log from here.")
    summary: dict[str, Any] = Field(description="The `launch_run --json` summary of the run.")


class LaunchIn(Schema):
    """A launch: the launch form's fields. Bounds and refusals are the form's (one action)."""

    model_config = ConfigDict(extra="forbid")

    playbook: str
    target: str | None = Field(
        None,
        description="A directory or document under the allowed target roots: an absolute "
        "path, or a label of GET /api/v1/targets/ ('samples/vulnerable_app/'). Leave out "
        "when uploading an archive (multipart).",
    )
    title: str = Field("", max_length=200)
    provider: str | None = None
    model: str | None = Field(None, max_length=200)
    role_models: dict[str, str] | None = None
    max_concurrency: int | None = None
    budget_usd: Decimal | None = None
    budget_tokens: int | None = None
    max_depth: int | None = None
    aggregation: list[str] | None = None
    latency_ms: int = 0
    options: dict[str, Any] | None = Field(
        None, description="Playbook options: k, chunk_files, document, max_agents, exclude, …"
    )
    hold_agents: bool = False


class AgentOut(Schema):
    id: int
    parent_id: int | None
    depth: int
    step: str
    role: str
    lens: str
    scope: str
    group: str
    why: str
    provider: str
    model: str
    status: str
    attempts: int
    tokens: Tokens
    cost_usd: float
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str


class StepOut(Schema):
    index: int
    kind: str
    name: str
    tokens: Tokens
    cost_usd: float
    seconds: float
    created_at: datetime
    data: dict[str, Any]


class AttemptOut(Schema):
    number: int
    attempt_try: int
    started: datetime
    ended: datetime | None
    outcome: str
    error: str


class FindingOut(Schema):
    id: int
    agent_id: int
    lens: str
    rule: str
    title: str
    detail: str
    severity: str
    confidence: float
    path: str
    line_start: int | None
    line_end: int | None
    cwe: int | None
    evidence: str
    review: str
    report_rank: int | None
    created_at: datetime


class AgentDetail(AgentOut):
    summary: str
    output: dict[str, Any]
    steps: list[StepOut]
    attempts_history: list[AttemptOut]
    findings: list[FindingOut]


class EventOut(Schema):
    seq: int
    type: str
    agent_id: int | None
    payload: dict[str, Any]
    created_at: datetime


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None
    last_seq: int = Field(description="Pass it back as `after` to follow the log.")


class ReportOut(Schema):
    version: int
    chain: list[str]
    params: dict[str, Any]
    stats: dict[str, Any]
    notes: list[Any]
    created_at: datetime
    exports: dict[str, str]


class ReportDetail(ReportOut):
    document: dict[str, Any] = Field(description="Clusters with provenance (the JSON export).")
    html: str = Field(description="The synthesized text, sanitized HTML.")
    source_text: str = Field(description="The synthesized text as written (Markdown, untrusted).")


class ApprovalOut(Schema):
    id: int
    run_id: int
    gate: str
    target_id: int
    target_label: str
    decision: str
    comment: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class DecisionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    decision: str = Field(description="approved, rejected or changes_requested (reports).")
    comment: str = Field("", max_length=5000)


class ReviewIn(Schema):
    model_config = ConfigDict(extra="forbid")

    decision: str = Field(description="accepted or dismissed.")
    comment: str = Field("", max_length=5000)


class ExtendIn(Schema):
    model_config = ConfigDict(extra="forbid")

    budget_usd: str = Field(description="The new total budget in USD, like '7.50'.")
    comment: str = Field("", max_length=5000)


class ReaggregateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    chain: list[str] | None = None
    dedup_threshold: float | None = None
    line_window: int | None = None
    vote_quorum: int | None = None
    lens_quorum: int | None = None
    min_confidence: float | None = None
    top_k: int | None = None
    embedder: str | None = None


class Done(Schema):
    detail: str


class RetryOut(Schema):
    detail: str
    retried: int


class TargetOut(Schema):
    label: str
    path: str


class PlaybookOut(Schema):
    name: str
    title: str
    options: list[str]
