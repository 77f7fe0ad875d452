"""The vocabulary of a run's event log: every event type, its label and the shape of its
payload (the channel-layer and websocket messages that carry the log to browsers are in
``runs.eventlog.messages``).

One catalog for the writers (``runs/actions/``, the runtime), the dashboard and the tests, so a
type string or a payload key cannot drift between the code that writes an event and the code that
reads it. The log alone rebuilds the run page: every state change the page shows is recorded here
as an event, in the transaction of the change (runs/eventlog/events.py).

Payloads are small facts (ids, counts, short labels, a truncated reason or error), never big
content: agent outputs, findings' details, reports and step data live in their own tables and are
read from there. ``check_payload`` enforces the keys (not the value types) cheaply on every write.

Standard library only: importable without Django set up.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import NotRequired, TypedDict


class EventType(StrEnum):
    # run: the run's lifecycle. run.approved / run.rejected are written as f"run.{status}".
    RUN_CREATED = "run.created"
    RUN_PLANNING = "run.planning"
    RUN_RUNNING = "run.running"
    RUN_AGGREGATING = "run.aggregating"
    RUN_AWAITING_REVIEW = "run.awaiting_review"
    RUN_APPROVED = "run.approved"
    RUN_REJECTED = "run.rejected"
    RUN_CANCELLED = "run.cancelled"
    RUN_FAILED = "run.failed"
    RUN_RESUMED = "run.resumed"
    # task: one agent's lifecycle. task.skipped / task.cancelled are also written as
    # f"task.{status}" when a stopped run drops the tasks that had not started.
    TASK_CREATED = "task.created"
    TASK_QUEUED = "task.queued"
    TASK_STARTED = "task.started"
    TASK_RATE_LIMITED = "task.rate_limited"
    TASK_RETRYING = "task.retrying"
    TASK_RESENT = "task.resent"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_SKIPPED = "task.skipped"
    TASK_CANCELLED = "task.cancelled"
    TASK_RETRY_REQUESTED = "task.retry_requested"
    # budget: per model call (reserve before, settle after) and the run's budget running out.
    BUDGET_RESERVED = "budget.reserved"  # no longer written; older runs' logs contain it
    BUDGET_SETTLED = "budget.settled"
    BUDGET_EXHAUSTED = "budget.exhausted"
    # The run's stored totals repaired to what its stored calls cost (never expected: a bug).
    BUDGET_RECONCILED = "budget.reconciled"
    # A subtree's allowance carved from its parent's (a planner group, an agent), and what a
    # finished subtree gave back to its parent (``agents.budget_scopes``).
    BUDGET_ALLOWANCE = "budget.allowance"
    BUDGET_RETURNED = "budget.returned"
    # tool: one tool call of an agent.
    TOOL_CALLED = "tool.called"
    TOOL_REFUSED = "tool.refused"
    # spawn: an agent asking for children; every request is followed by task.created or refused.
    SPAWN_REQUESTED = "spawn.requested"
    SPAWN_REFUSED = "spawn.refused"
    # finding: one finding stored by an agent.
    FINDING_ADDED = "finding.added"
    # adaptive: an adaptive run's decision for one group (runs.actions.adaptive).
    ADAPTIVE_DECIDED = "adaptive.decided"
    # tier: a breadth agent's items sent to a depth agent (or not, and why), and its verdicts.
    TIER_ESCALATED = "tier.escalated"
    TIER_VERIFIED = "tier.verified"
    # approval: a gate opened (task or report) and a reviewer's decision.
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_DECIDED = "approval.decided"
    APPROVAL_CHANGES_REQUESTED = "approval.changes_requested"
    # report: a report version stored by aggregation.
    REPORT_CREATED = "report.created"
    # evaluation: a reviewer's own score of one item on one dimension (human calibration).
    EVALUATION_HUMAN_SCORED = "evaluation.human_scored"


class TokenCounts(TypedDict):
    input: int
    output: int


# -- run ----------------------------------------------------------------------------------------
class RunCreatedPayload(TypedDict):
    playbook: str
    target: str
    provider: str
    files: int
    skipped: int
    launched_by: str | None


class RunPlanningPayload(TypedDict):
    playbook: str


class RunRunningPayload(TypedDict):
    tasks: int  # tasks in the plan


class RunAggregatingPayload(TypedDict):
    """No payload."""


class RunAwaitingReviewPayload(TypedDict):
    """No payload."""


class RunApprovedPayload(TypedDict):
    by: str  # username


class RunRejectedPayload(TypedDict):
    by: str


class RunCancelledPayload(TypedDict):
    by: str


class RunFailedPayload(TypedDict):
    reason: str


class RunResumedPayload(TypedDict):
    by: str
    retrying: int  # failed tasks put back to pending
    # A reviewer dismissed a finding and re-ran the agents that reported it: which ones.
    finding: NotRequired[int]
    agents: NotRequired[list[int]]


# -- task ---------------------------------------------------------------------------------------
class TaskCreatedPayload(TypedDict):
    key: str  # first 12 characters of the task key
    step: str
    lens: str
    scope: str  # the scope's label
    why: str
    parent: int | None  # parent task id; None for a planned root task


class TaskQueuedPayload(TypedDict):
    """No payload."""


class TaskStartedPayload(TypedDict):
    attempt: int


class TaskRateLimitedPayload(TypedDict):
    delay_s: float
    # Why it waits, when not the provider's shared rate limit (e.g. the budget's in-flight
    # reservations).
    reason: NotRequired[str]


class TaskRetryingPayload(TypedDict):
    attempt: int
    delay_s: float
    error: str


class TaskResentPayload(TypedDict):
    was: str  # the task's status when re-sent: "queued", "running" or "retrying"
    # Why its message was presumed lost (the sweeper's re-sends): "holder gone", "retry overdue",
    # "redis restarted", "a worker died".
    why: NotRequired[str]


class TaskSucceededPayload(TypedDict):
    tokens: TokenCounts
    cost_usd: str  # a Decimal as text
    findings: int
    children: int


class TaskFailedPayload(TypedDict):
    error: str
    attempts: int


class TaskSkippedPayload(TypedDict):
    reason: str


class TaskCancelledPayload(TypedDict):
    reason: str


class TaskRetryRequestedPayload(TypedDict):
    """No payload."""


# -- budget -------------------------------------------------------------------------------------
class BudgetReservedPayload(TypedDict):
    step: int  # step index within the task
    usd: str  # upper-bound estimate, a Decimal as text
    tokens: int
    model: str


class BudgetSettledPayload(TypedDict):
    step: int
    model: str
    usd: str  # actual cost, a Decimal as text ("0" when unpriced)
    unpriced: bool
    tokens: TokenCounts
    price_version: str


class BudgetExhaustedPayload(TypedDict):
    reason: str


class BudgetReconciledPayload(TypedDict):
    was_usd: str  # the run's stored cost before (a Decimal as text)
    cost_usd: str  # what its paid calls cost
    drift_usd: str  # cost_usd - was_usd
    tokens_drift: int


class BudgetAllowancePayload(TypedDict):
    scope: str  # "g:<group>" or "t<task id>" (agents.budget_scopes)
    label: str  # the group, or the agent's scope, in words
    parent: str  # the scope it was carved from ("" for the run's budget)
    usd: str | None  # the allowance, a Decimal as text; None: no limit of its own
    tokens: int | None


class BudgetReturnedPayload(TypedDict):
    scope: str
    label: str
    parent: str
    usd: str  # the unused part given back to the parent, a Decimal as text
    tokens: int


# -- tool ---------------------------------------------------------------------------------------
class ToolCalledPayload(TypedDict):
    step: int
    tool: str
    reason: str  # always "" for a call that was not refused


class ToolRefusedPayload(TypedDict):
    step: int
    tool: str
    reason: str


# -- spawn --------------------------------------------------------------------------------------
class SpawnRequestedPayload(TypedDict):
    scope: str  # the requested scope's label
    why: str


class SpawnRefusedPayload(TypedDict):
    scope: str
    why: str
    reason: str


# -- tier ---------------------------------------------------------------------------------------
class TierEscalatedPayload(TypedDict):
    """On the breadth agent: how many of its items went to a depth agent and why."""

    items: int
    reason: str  # the thresholds, e.g. "severity ≥ high or confidence < 0.6"
    model: str  # the depth agent's model
    depth_task: int | None  # None: refused (``refused`` says why)
    left: NotRequired[int]  # items over the per-agent cap, left as the breadth tier gave them
    refused: NotRequired[str]


class TierVerifiedPayload(TypedDict):
    """On the depth agent: what it made of the items it was given."""

    confirmed: int
    corrected: int
    rejected: int
    unverified: int  # no valid verdict in its answer (model output is checked, not trusted)
    model: str


# -- finding ------------------------------------------------------------------------------------
class FindingAddedPayload(TypedDict):
    title: str
    severity: str
    location: str  # "path:line"


# -- adaptive -----------------------------------------------------------------------------------
class AdaptiveDecidedPayload(TypedDict):
    group: str  # the planner's group (a folder; "" is the target's root)
    wave: int  # 0: decided on the scouts' results, 1: on the first wave's, …
    added: int  # agents added (0: the group stops growing)
    reason: str  # the decision in words, as the tree shows it
    last_task: int  # the group's newest agent when decided: later ones are the next wave
    found: int  # new findings of the wave decided on
    repeated: int  # its findings that repeated known ones


# -- approval -----------------------------------------------------------------------------------
class ApprovalRequestedPayload(TypedDict):
    gate: str  # "task" (actions.dispatch) or "report" (actions.report.store_report)
    version: NotRequired[int]  # report version; only the report gate writes it


class ApprovalDecidedPayload(TypedDict):
    gate: str
    decision: str  # "approved" or "rejected"
    by: str
    target: str  # the approval's target label
    comment: str


class ApprovalChangesRequestedPayload(TypedDict):
    """A reviewer asks for changes: the gate stays open (a new report version, or a later
    approve or reject, closes it)."""

    gate: str
    by: str
    target: str
    comment: str


# -- report -------------------------------------------------------------------------------------
class ReportCreatedPayload(TypedDict):
    version: int
    # The draft's stats (agents/aggregation/stages.py run_chain), spread into the payload.
    raw_findings: int
    clusters: int
    kept: int
    dropped: int
    by_severity: dict[str, int]
    # Clusters whose cited location or quote is not in the snapshot (older events lack it).
    fabricated: NotRequired[int]
    # Findings agents dropped at their output cap (only when some were).
    dropped_at_output_limit: NotRequired[int]


# -- evaluation ---------------------------------------------------------------------------------
class EvaluationHumanScoredPayload(TypedDict):
    """One cell a reviewer scored by hand on the scorecard page; the latest event of a
    (by, variant, item, dimension) is the reviewer's score (agents/evaluation/calibration.py)."""

    item: str  # the dataset item's id
    variant: str  # "" or "a"/"b" in an A/B evaluation
    dimension: str
    score: int
    note: str  # the reviewer's note on the item, at most 500 characters ("" without one)
    by: str  # username


PAYLOAD_TYPES: dict[EventType, type] = {
    EventType.RUN_CREATED: RunCreatedPayload,
    EventType.RUN_PLANNING: RunPlanningPayload,
    EventType.RUN_RUNNING: RunRunningPayload,
    EventType.RUN_AGGREGATING: RunAggregatingPayload,
    EventType.RUN_AWAITING_REVIEW: RunAwaitingReviewPayload,
    EventType.RUN_APPROVED: RunApprovedPayload,
    EventType.RUN_REJECTED: RunRejectedPayload,
    EventType.RUN_CANCELLED: RunCancelledPayload,
    EventType.RUN_FAILED: RunFailedPayload,
    EventType.RUN_RESUMED: RunResumedPayload,
    EventType.TASK_CREATED: TaskCreatedPayload,
    EventType.TASK_QUEUED: TaskQueuedPayload,
    EventType.TASK_STARTED: TaskStartedPayload,
    EventType.TASK_RATE_LIMITED: TaskRateLimitedPayload,
    EventType.TASK_RETRYING: TaskRetryingPayload,
    EventType.TASK_RESENT: TaskResentPayload,
    EventType.TASK_SUCCEEDED: TaskSucceededPayload,
    EventType.TASK_FAILED: TaskFailedPayload,
    EventType.TASK_SKIPPED: TaskSkippedPayload,
    EventType.TASK_CANCELLED: TaskCancelledPayload,
    EventType.TASK_RETRY_REQUESTED: TaskRetryRequestedPayload,
    EventType.BUDGET_RESERVED: BudgetReservedPayload,
    EventType.BUDGET_SETTLED: BudgetSettledPayload,
    EventType.BUDGET_EXHAUSTED: BudgetExhaustedPayload,
    EventType.BUDGET_RECONCILED: BudgetReconciledPayload,
    EventType.BUDGET_ALLOWANCE: BudgetAllowancePayload,
    EventType.BUDGET_RETURNED: BudgetReturnedPayload,
    EventType.TOOL_CALLED: ToolCalledPayload,
    EventType.TOOL_REFUSED: ToolRefusedPayload,
    EventType.SPAWN_REQUESTED: SpawnRequestedPayload,
    EventType.SPAWN_REFUSED: SpawnRefusedPayload,
    EventType.FINDING_ADDED: FindingAddedPayload,
    EventType.ADAPTIVE_DECIDED: AdaptiveDecidedPayload,
    EventType.TIER_ESCALATED: TierEscalatedPayload,
    EventType.TIER_VERIFIED: TierVerifiedPayload,
    EventType.APPROVAL_REQUESTED: ApprovalRequestedPayload,
    EventType.APPROVAL_DECIDED: ApprovalDecidedPayload,
    EventType.APPROVAL_CHANGES_REQUESTED: ApprovalChangesRequestedPayload,
    EventType.REPORT_CREATED: ReportCreatedPayload,
    EventType.EVALUATION_HUMAN_SCORED: EvaluationHumanScoredPayload,
}

# (required keys, allowed keys) per type, computed once: check_payload is two subset tests.
_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    member: (
        frozenset(PAYLOAD_TYPES[member].__required_keys__),  # type: ignore[attr-defined]
        frozenset(PAYLOAD_TYPES[member].__required_keys__)  # type: ignore[attr-defined]
        | frozenset(PAYLOAD_TYPES[member].__optional_keys__),  # type: ignore[attr-defined]
    )
    for member in EventType  # a member without a payload type fails here, at import
}


def check_payload(type: EventType, payload: Mapping[str, object]) -> None:
    """Raise ``ValueError`` if ``payload`` has a key its type does not declare or lacks a required
    one (keys only; value types are left to mypy at the call sites). A plain string equal to a
    member's value is accepted too; an unknown type is an error."""
    try:
        required, allowed = _KEYS[type]
    except KeyError:
        raise ValueError(f"unknown event type {type!r}") from None
    keys = payload.keys()
    if required <= keys <= allowed:
        return
    unexpected = sorted(set(keys) - allowed)
    missing = sorted(required - set(keys))
    raise ValueError(f"{type} payload: unexpected keys {unexpected}, missing keys {missing}")


# -- builders: payloads assembled in more than one place ----------------------------------------
def task_created_payload(
    *, key: str, step: str, lens: str, scope: str, why: str, parent: int | None
) -> TaskCreatedPayload:
    """``task.created`` for a planned root task (``parent=None``) or a spawned child (the
    parent's id); ``runs.actions.planning.task_created`` builds it from a Task. Takes the full
    key and the scope label; applies the same caps as the Task row (key shown by its first 12
    characters, scope 300, why 500)."""
    return {
        "key": key[:12],
        "step": step,
        "lens": lens,
        "scope": scope[:300],
        "why": why[:500],
        "parent": parent,
    }


def token_counts(input_tokens: int, output_tokens: int) -> TokenCounts:
    """The ``tokens`` value of ``task.succeeded`` and ``budget.settled``."""
    return {"input": input_tokens, "output": output_tokens}


def approval_requested_payload(gate: str, version: int | None = None) -> ApprovalRequestedPayload:
    """``approval.requested``: the task gate (actions.dispatch) has no version; the report gate
    (actions.report.store_report) names the report version awaiting review."""
    if version is None:
        return {"gate": gate}
    return {"gate": gate, "version": version}
