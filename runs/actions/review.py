"""A reviewer's decisions at the approval gates (report, task, finding)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from runs.actions import enqueue
from runs.event_types import EventType
from runs.events import record_event
from runs.models import Approval, Finding, Run, Task
from runs.tracing import run_context


def decide_approval(approval: Approval, user: Any, decision: str, comment: str = "") -> bool:
    """Record a reviewer's decision once; the run or task moves on accordingly."""
    if decision not in (Approval.Decision.APPROVED, Approval.Decision.REJECTED):
        raise ValueError("decision must be approved or rejected")
    with transaction.atomic():
        won = (
            Approval.objects.filter(pk=approval.pk, decision=Approval.Decision.PENDING).update(
                decision=decision,
                decided_by=user,
                comment=comment[:5000],
                decided_at=timezone.now(),
            )
            == 1
        )
        if not won:
            return False
        run = Run.objects.select_for_update().get(pk=approval.run_id)
        record_event(
            run,
            EventType.APPROVAL_DECIDED,
            {
                "gate": approval.gate,
                "decision": decision,
                "by": user.get_username(),
                "target": approval.target_label,
            },
        )
        if approval.gate == Approval.Gate.REPORT:
            status = Run.Status.APPROVED if decision == "approved" else Run.Status.REJECTED
            if run.transition(status, f"{decision} by {user.get_username()}"):
                record_event(run, EventType(f"run.{status}"), {"by": user.get_username()})
        elif approval.gate == Approval.Gate.TASK:
            task = Task.objects.get(pk=approval.target_id, run=run)
            if decision == "approved":
                task.move(
                    Task.Status.PENDING,
                    allowed_from=[Task.Status.AWAITING_APPROVAL],
                    needs_approval=False,
                )
            else:
                task.move(
                    Task.Status.SKIPPED,
                    allowed_from=[Task.Status.AWAITING_APPROVAL],
                    error="rejected at the approval gate",
                    finished_at=timezone.now(),
                )
            enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(run))
        elif approval.gate == Approval.Gate.FINDING:
            Finding.objects.filter(pk=approval.target_id, run=run).update(
                review="accepted" if decision == "approved" else "dismissed"
            )
    return True
