"""Each event type in words, for the pages (the raw type stays in ``title``/``data-type``).
Standard library only, like the catalog it labels."""

from runs.eventlog.event_types import EventType

# What people read for each type (the run page's feed, the events page); the raw type stays in
# the markup's title and data-type, for whoever greps the log or the API for it.
LABELS: dict[str, str] = {
    EventType.RUN_CREATED: "Run created",
    EventType.RUN_PLANNING: "Planning",
    EventType.RUN_RUNNING: "Running",
    EventType.RUN_AGGREGATING: "Aggregating",
    EventType.RUN_AWAITING_REVIEW: "Awaiting review",
    EventType.RUN_APPROVED: "Report approved",
    EventType.RUN_REJECTED: "Report rejected",
    EventType.RUN_CANCELLED: "Run cancelled",
    EventType.RUN_FAILED: "Run failed",
    EventType.RUN_RESUMED: "Run resumed",
    EventType.TASK_CREATED: "Agent created",
    EventType.TASK_QUEUED: "Agent queued",
    EventType.TASK_STARTED: "Agent started",
    EventType.TASK_RATE_LIMITED: "Rate limited",
    EventType.TASK_RETRYING: "Agent retrying",
    EventType.TASK_RESENT: "Agent re-sent",
    EventType.TASK_SUCCEEDED: "Agent succeeded",
    EventType.TASK_FAILED: "Agent failed",
    EventType.TASK_SKIPPED: "Agent skipped",
    EventType.TASK_CANCELLED: "Agent cancelled",
    EventType.TASK_RETRY_REQUESTED: "Retry requested",
    EventType.BUDGET_RESERVED: "Budget reserved",
    EventType.BUDGET_SETTLED: "Budget settled",
    EventType.BUDGET_RECONCILED: "Totals reconciled with paid calls",
    EventType.EVALUATION_HUMAN_SCORED: "Scored by a reviewer",
    EventType.BUDGET_EXHAUSTED: "Budget exhausted",
    EventType.BUDGET_ALLOWANCE: "Allowance carved",
    EventType.BUDGET_RETURNED: "Leftover returned",
    EventType.TOOL_CALLED: "Tool called",
    EventType.TOOL_REFUSED: "Tool refused",
    EventType.SPAWN_REQUESTED: "Sub-agent requested",
    EventType.SPAWN_REFUSED: "Sub-agent refused",
    EventType.FINDING_ADDED: "Finding",
    EventType.ADAPTIVE_DECIDED: "Adaptive fan-out",
    EventType.TIER_ESCALATED: "Escalated to the depth tier",
    EventType.TIER_VERIFIED: "Depth tier verdicts",
    EventType.APPROVAL_REQUESTED: "Approval requested",
    EventType.APPROVAL_DECIDED: "Decision",
    EventType.APPROVAL_CHANGES_REQUESTED: "Changes requested",
    EventType.REPORT_CREATED: "Report ready",
}


def event_label(event_type: str) -> str:
    """The words for ``event_type``; a type this catalog lacks (an older log's) as readable
    text ("spawn.refused" would read "Spawn refused")."""
    return LABELS.get(event_type) or event_type.replace(".", " ").replace("_", " ").capitalize()
