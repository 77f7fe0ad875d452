"""The records of a run (their contract: docs/architecture.md, "The records")."""

from runs.models.approval import Approval
from runs.models.event import Event
from runs.models.finding import Finding
from runs.models.report import Report
from runs.models.run import Run
from runs.models.span import Span
from runs.models.task import Step, Task
from runs.models.token import ApiToken
from runs.models.webhook import WebhookDelivery, WebhookEvent, WebhookSubscription

__all__ = [
    "ApiToken",
    "Approval",
    "Event",
    "Finding",
    "Report",
    "Run",
    "Span",
    "Step",
    "Task",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
]
