"""What reviewers said about a report version: the decision at its gate (approved or rejected,
by whom, when, and the comment they wrote) and the changes they requested on it. Shown beside
the report on the run page and on the version's own page. Comments are a person's free text:
templates show them auto-escaped, never as markup."""

from __future__ import annotations

from dataclasses import dataclass

from runs.eventlog.event_types import EventType
from runs.models import Approval, Event, Report, Run


@dataclass(frozen=True)
class ChangeRequest:
    by: str
    comment: str
    at: object  # datetime; the template only formats it


def report_decision(run: Run, report: Report | None) -> Approval | None:
    """The decided gate of ``report`` (the report gate's target is the version's row)."""
    if report is None:
        return None
    return (
        Approval.objects.filter(run=run, gate=Approval.Gate.REPORT, target_id=report.pk)
        .exclude(decision=Approval.Decision.PENDING)
        .select_related("decided_by")
        .order_by("-decided_at")
        .first()
    )


def changes_requested(run: Run, report: Report, limit: int = 5) -> list[ChangeRequest]:
    """Requests for changes made while ``report`` was the newest version, newest first (a
    request leaves the gate open, so it is an event, not a decision on the Approval)."""
    events = Event.objects.filter(
        run_id=run.pk,
        type=EventType.APPROVAL_CHANGES_REQUESTED,
        created_at__gte=report.created_at,
    )
    later = run.reports.filter(version__gt=report.version).order_by("version").first()
    if later is not None:
        events = events.filter(created_at__lt=later.created_at)
    return [
        ChangeRequest(str(e.payload.get("by", "")), str(e.payload.get("comment", "")), e.created_at)
        for e in events.order_by("-seq")[:limit]
    ]
