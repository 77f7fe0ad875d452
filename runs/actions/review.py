"""A reviewer's decisions at the approval gates (report, task, finding).

Every decision is an event. A decision is taken once: the conditional UPDATE lets one reviewer
win, and anyone deciding the same gate later is told who decided, when and how. Refusals
(``DecisionRefused``) change nothing and say why in words the page shows as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from runs.actions import enqueue
from runs.actions.extend import apply_extension
from runs.actions.refusals import DecisionRefused
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Approval, Finding, Run, Task
from runs.observability.tracing import run_context, trace_decision

CHANGES_REQUESTED = "changes_requested"
DECISIONS = (Approval.Decision.APPROVED, Approval.Decision.REJECTED, CHANGES_REQUESTED)


def _who(user: User | None) -> str:
    return str(user.get_username()) if user is not None else "someone"


def check_decision(approval: Approval, user: User, decision: str, comment: str) -> None:
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


def decide_approval(approval: Approval, user: User, decision: str, comment: str = "") -> None:
    """Record a reviewer's decision once; the run or task moves on accordingly. Raises
    DecisionRefused (nothing changed) when the decision is not allowed or was already taken."""
    comment = comment.strip()[:5000]
    check_decision(approval, user, decision, comment)
    if decision == CHANGES_REQUESTED:
        _request_changes(approval, user, comment)
        return
    with transaction.atomic():
        if not _take(approval, user, decision, comment):
            # Someone decided between our read and our write: say who, from the row as it is.
            approval.refresh_from_db()
            check_decision(approval, user, decision, comment)
        run = Run.objects.select_for_update().get(pk=approval.run_id)
        _record(run, approval, user, decision, comment)
        if approval.gate == Approval.Gate.REPORT:
            status = Run.Status.APPROVED if decision == "approved" else Run.Status.REJECTED
            if run.transition(status, f"{decision} by {_who(user)}"):
                record_event(run, EventType(f"run.{status}"), {"by": _who(user)})
        elif approval.gate == Approval.Gate.TASK:
            _decide_task(run, approval, decision)
            enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(run))
        elif approval.gate == Approval.Gate.FINDING:
            Finding.objects.filter(pk=approval.target_id, run=run).update(
                review="accepted" if decision == "approved" else "dismissed"
            )
        elif approval.gate == Approval.Gate.BUDGET and decision == "approved":
            apply_extension(run, approval, user)


def _take(approval: Approval, user: User, decision: str, comment: str) -> bool:
    """The conditional UPDATE that lets one reviewer win a gate: True for the winner only."""
    return (
        Approval.objects.filter(pk=approval.pk, decision=Approval.Decision.PENDING).update(
            decision=decision,
            decided_by=user,
            comment=comment,
            decided_at=timezone.now(),
        )
        == 1
    )


def _record(run: Run, approval: Approval, user: User, decision: str, comment: str) -> None:
    """The decision's event and span (the caller holds the run's lock)."""
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


def _decide_task(run: Run, approval: Approval, decision: str) -> None:
    """An agent that waited for approval: approved, it becomes ready (only that one); rejected,
    it is skipped. The caller has the run dispatched, which starts what is ready."""
    task = Task.objects.get(pk=approval.target_id, run=run)
    if decision == "approved":
        task.move(Task.Move.RELEASE, needs_approval=False)
    else:
        task.move(
            Task.Move.REJECT,
            error="rejected at the approval gate",
            finished_at=timezone.now(),
        )


@dataclass
class BulkDecision:
    """What a bulk decision did: how many gates it decided, and the ones it skipped by reason
    (a gate someone else decided first, a gate ``check_decision`` refuses for this reviewer)."""

    run: Run
    decision: str
    group: str | None = None
    decided: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def summary(self) -> str:
        """One sentence for the page: decided, skipped and why."""
        where = f"run #{self.run.pk}"
        if self.group is not None:
            where += f" (group {self.group})" if self.group else " (agents in no group)"
        verb = "Approved" if self.decision == Approval.Decision.APPROVED else "Rejected"
        if not self.decided and not self.skipped:
            return f"No agent of {where} was waiting for a decision."
        text = f"{verb} {self.decided} waiting agent{'s' if self.decided != 1 else ''} of {where}."
        if self.skipped:
            reasons = "; ".join(f"{why} ({n})" for why, n in sorted(self.skipped.items()))
            text += f" {self.skipped_count} skipped: {reasons}."
        return text


def decide_task_gates(
    run: Run, user: User, decision: str, comment: str = "", group: str | None = None
) -> BulkDecision:
    """Approve or reject every agent of ``run`` waiting at its gate, or those of one tree group
    (``Task.group`` exactly; ``None``: the whole run), in one transaction. Each gate is decided
    as ``decide_approval`` decides one (``check_decision``, the conditional UPDATE, its event);
    a gate decided by someone else meanwhile, or refused for this reviewer, is skipped and
    counted, not an error. The run is dispatched once. Raises DecisionRefused, changing nothing,
    for a decision no gate could take (not approve/reject, a rejection without a comment)."""
    comment = comment.strip()[:5000]
    if decision not in (Approval.Decision.APPROVED, Approval.Decision.REJECTED):
        raise DecisionRefused("Choose approve or reject.")
    if decision == Approval.Decision.REJECTED and not comment:
        raise DecisionRefused("A rejection needs a comment saying why.")
    result = BulkDecision(run=run, decision=decision, group=group)
    with transaction.atomic():
        # The gates first, then the run's lock: the order ``decide_approval`` takes them in, so
        # a single decision racing this one waits for it instead of deadlocking with it.
        won = []
        for approval in _waiting_task_gates(run, group):
            try:
                check_decision(approval, user, decision, comment)
            except DecisionRefused as exc:
                result.skip(str(exc))
                continue
            if _take(approval, user, decision, comment):
                won.append(approval)
            else:
                approval.refresh_from_db()
                result.skip(f"already decided by {_who(approval.decided_by)}")
        if not won:
            return result
        locked = Run.objects.select_for_update().get(pk=run.pk)
        for approval in won:
            _record(locked, approval, user, decision, comment)
            _decide_task(locked, approval, decision)
        result.decided = len(won)
        enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(locked))
    return result


def _waiting_task_gates(run: Run, group: str | None) -> list[Approval]:
    """The run's pending agent gates (of ``group`` when given), in id order (the lock order)."""
    gates = Approval.objects.filter(
        run=run, gate=Approval.Gate.TASK, decision=Approval.Decision.PENDING
    )
    if group is not None:
        gates = gates.filter(target_id__in=Task.objects.filter(run=run, group=group).values("pk"))
    return list(gates.select_related("run", "decided_by").order_by("id"))


def _request_changes(approval: Approval, user: User, comment: str) -> None:
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


def review_finding(finding: Finding, user: User, decision: str, comment: str = "") -> None:
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
