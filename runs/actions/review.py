"""A reviewer's decisions at the approval gates (report, task, finding).

Every decision is an event. A decision is taken once: the conditional UPDATE lets one reviewer
win, and anyone deciding the same gate later is told who decided, when and how. Refusals
(``DecisionRefused``) change nothing and say why in words the page shows as they are.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runs.actions import enqueue
from runs.actions.extend import apply_extension
from runs.actions.refusals import DecisionRefused
from runs.event_types import EventType
from runs.events import record_event
from runs.models import Approval, Finding, Run, Task
from runs.tracing import run_context, trace_decision

CHANGES_REQUESTED = "changes_requested"
DECISIONS = (Approval.Decision.APPROVED, Approval.Decision.REJECTED, CHANGES_REQUESTED)


def _who(user: Any) -> str:
    return str(user.get_username()) if user is not None else "someone"


def check_decision(approval: Approval, user: Any, decision: str, comment: str) -> None:
    """Raise DecisionRefused when ``user`` may not take ``decision`` at ``approval`` now."""
    if decision not in DECISIONS:
        raise DecisionRefused("Choose approve, reject or request changes.")
    if decision == CHANGES_REQUESTED and approval.gate != Approval.Gate.REPORT:
        raise DecisionRefused("Changes can be requested on a report only.")
    if decision != Approval.Decision.APPROVED and not comment.strip():
        what = "A rejection" if decision == Approval.Decision.REJECTED else "A request for changes"
        raise DecisionRefused(f"{what} needs a comment saying why.")
    if approval.decision != Approval.Decision.PENDING:
        when = (
            f" at {timezone.localtime(approval.decided_at):%H:%M:%S on %d %b}"
            if approval.decided_at
            else ""
        )
        raise DecisionRefused(
            f"Already decided: {approval.decision} by {_who(approval.decided_by)}{when}."
        )
    if (
        settings.HARNESS_FOUR_EYES
        and approval.gate in (Approval.Gate.REPORT, Approval.Gate.BUDGET)
        and approval.run.launched_by_id is not None
        and approval.run.launched_by_id == user.pk
    ):
        raise DecisionRefused(
            "Four-eyes rule: you launched this run, so another reviewer decides this gate."
        )


def decide_approval(approval: Approval, user: Any, decision: str, comment: str = "") -> None:
    """Record a reviewer's decision once; the run or task moves on accordingly. Raises
    DecisionRefused (nothing changed) when the decision is not allowed or was already taken."""
    comment = comment.strip()[:5000]
    check_decision(approval, user, decision, comment)
    if decision == CHANGES_REQUESTED:
        _request_changes(approval, user, comment)
        return
    with transaction.atomic():
        won = (
            Approval.objects.filter(pk=approval.pk, decision=Approval.Decision.PENDING).update(
                decision=decision,
                decided_by=user,
                comment=comment,
                decided_at=timezone.now(),
            )
            == 1
        )
        if not won:
            # Someone decided between our read and our write: say who, from the row as it is.
            approval.refresh_from_db()
            check_decision(approval, user, decision, comment)
        run = Run.objects.select_for_update().get(pk=approval.run_id)
        record_event(
            run,
            EventType.APPROVAL_DECIDED,
            {
                "gate": approval.gate,
                "decision": decision,
                "by": _who(user),
                "target": approval.target_label,
                "comment": comment[:500],
            },
        )
        trace_decision(run, approval, decision, user, comment)
        if approval.gate == Approval.Gate.REPORT:
            status = Run.Status.APPROVED if decision == "approved" else Run.Status.REJECTED
            if run.transition(status, f"{decision} by {_who(user)}"):
                record_event(run, EventType(f"run.{status}"), {"by": _who(user)})
        elif approval.gate == Approval.Gate.TASK:
            _decide_task(run, approval, decision)
        elif approval.gate == Approval.Gate.FINDING:
            Finding.objects.filter(pk=approval.target_id, run=run).update(
                review="accepted" if decision == "approved" else "dismissed"
            )
        elif approval.gate == Approval.Gate.BUDGET and decision == "approved":
            apply_extension(run, approval, user)


def _decide_task(run: Run, approval: Approval, decision: str) -> None:
    """An agent that waited for approval: approved, it becomes ready (only that one); rejected,
    it is skipped. The run's dispatch then starts what is ready."""
    task = Task.objects.get(pk=approval.target_id, run=run)
    if decision == "approved":
        task.move(Task.Move.RELEASE, needs_approval=False)
    else:
        task.move(
            Task.Move.REJECT,
            error="rejected at the approval gate",
            finished_at=timezone.now(),
        )
    enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(run))


def _request_changes(approval: Approval, user: Any, comment: str) -> None:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=approval.run_id)
        if not Approval.objects.filter(pk=approval.pk, decision="pending").exists():
            approval.refresh_from_db()
            check_decision(approval, user, CHANGES_REQUESTED, comment)
        record_event(
            run,
            EventType.APPROVAL_CHANGES_REQUESTED,
            {
                "gate": approval.gate,
                "by": _who(user),
                "target": approval.target_label,
                "comment": comment[:500],
            },
        )
        trace_decision(run, approval, CHANGES_REQUESTED, user, comment)


def review_finding(finding: Finding, user: Any, decision: str, comment: str = "") -> None:
    """Accept or dismiss one finding: a decided finding gate (an Approval, kept for the audit
    trail) and an event. A dismissal needs a comment; a finding already reviewed is refused
    saying by whom."""
    if decision not in ("accepted", "dismissed"):
        raise DecisionRefused("Choose accept or dismiss.")
    comment = comment.strip()[:5000]
    if decision == "dismissed" and not comment:
        raise DecisionRefused("Dismissing a finding needs a comment saying why.")
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=finding.run_id)
        if not Finding.objects.filter(pk=finding.pk, review=Finding.Review.OPEN).update(
            review=decision
        ):
            earlier = (
                Approval.objects.filter(run=run, gate=Approval.Gate.FINDING, target_id=finding.pk)
                .select_related("decided_by")
                .first()
            )
            who = f" by {_who(earlier.decided_by)}" if earlier else ""
            raise DecisionRefused(f"This finding was already reviewed{who}.")
        label = f"{finding.title[:200]} ({finding.location})"[:300]
        Approval.objects.create(
            run=run,
            gate=Approval.Gate.FINDING,
            target_id=finding.pk,
            target_label=label,
            decision="approved" if decision == "accepted" else "rejected",
            decided_by=user,
            decided_at=timezone.now(),
            comment=comment,
        )
        record_event(
            run,
            EventType.APPROVAL_DECIDED,
            {
                "gate": Approval.Gate.FINDING,
                "decision": decision,
                "by": _who(user),
                "target": label,
                "comment": comment[:500],
            },
        )
