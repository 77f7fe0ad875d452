"""The budget gate: when a run's budget runs out, an operator asks for more; once a reviewer
approves (the four-eyes rule applies), the run continues from where it stopped — the agents
skipped for budget go back to pending — and finishes with a new report version. Without an
extension the run stays finalised on what it could pay for.

The gate's ``target_id`` is the requested budget in micro-USD: the amount travels with the
approval, so what is approved is exactly what was asked.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from harness_site.redis_client import get_redis
from runs.actions import enqueue
from runs.actions.launch_options import BUDGET_USD_MAX
from runs.actions.refusals import DecisionRefused
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event, record_events
from runs.models import Approval, Run, Task
from runs.observability.tracing import begin_resume_trace, run_context
from runs.run_budget import budget_for, rebuild_budget

MICRO = Decimal(1_000_000)
BUDGET_SKIP = "budget exhausted"


def requested_budget(approval: Approval) -> Decimal:
    return Decimal(approval.target_id) / MICRO


def request_extension(run: Run, user: User, amount: str, comment: str = "") -> Approval:
    """Open the budget gate of a budget-exhausted run for ``amount`` USD (the new total)."""
    try:
        new = Decimal(str(amount).strip().lstrip("$")).quantize(Decimal("0.000001"))
    except (InvalidOperation, ValueError):
        raise DecisionRefused("The new budget must be an amount in USD, like 7.50.") from None
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status != Run.Status.BUDGET_EXHAUSTED:
            raise DecisionRefused("Only a run whose budget ran out can have it extended.")
        current = run.budget_usd or Decimal(0)
        if not new.is_finite() or new <= current or new > BUDGET_USD_MAX:
            raise DecisionRefused(
                f"The new budget must be more than the current ${current:.4f} "
                f"and at most ${BUDGET_USD_MAX:,}."
            )
        if run.approvals.filter(gate=Approval.Gate.BUDGET, decision="pending").exists():
            raise DecisionRefused("An extension of this run is already waiting for a decision.")
        gate = Approval.objects.create(
            run=run,
            gate=Approval.Gate.BUDGET,
            target_id=int(new * MICRO),
            target_label=f"raise the budget from ${current:.4f} to ${new:.4f}",
            comment=comment.strip()[:5000],
        )
        record_event(run, EventType.APPROVAL_REQUESTED, {"gate": Approval.Gate.BUDGET})
    return gate


def apply_extension(run: Run, approval: Approval, user: User) -> int:
    """Called in the decision's transaction when the budget gate is approved: raise the limit,
    put the agents skipped for budget back to pending, resume the run. Returns how many."""
    new = requested_budget(approval)
    who = user.get_username() if user is not None else "someone"
    if not run.transition(Run.Status.RUNNING, f"budget extended to ${new:.4f} by {who}"):
        raise DecisionRefused("The run is no longer waiting for a budget extension.")
    Run.objects.filter(pk=run.pk).update(budget_usd=new)
    run.budget_usd = new
    skipped = list(
        Task.objects.filter(
            run=run, status=Task.Status.SKIPPED, error__startswith=BUDGET_SKIP
        ).order_by("id")
    )
    moved = Task.move_many(skipped, Task.Move.RESUME, error="", finished_at=None)
    # The report of what the first budget paid for is superseded: the run will report again.
    run.approvals.filter(gate=Approval.Gate.REPORT, decision="pending").update(
        decision=Approval.Decision.REJECTED,
        comment="Superseded: the budget was extended and the run continued.",
        decided_at=timezone.now(),
    )
    begin_resume_trace(run)
    record_events(
        run,
        [(EventType.RUN_RESUMED, {"by": who, "retrying": len(moved)}, None)]
        + [(EventType.TASK_RETRY_REQUESTED, {}, t) for t in moved],
    )
    # The Redis state said "exhausted" under the old limit: rebuilt from the database (every
    # stored call counted) with the new one once this commits.
    keys = budget_for(run).keys

    def rebuild() -> None:
        get_redis().delete(*keys)
        rebuild_budget(Run.objects.get(pk=run.pk))

    transaction.on_commit(rebuild)
    # Like a retry's resumption: published in the run's trace (Celery's spans, when on, join
    # it), and the run's next end is a ``resume`` span under its root (runs.observability.tracing).
    enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(run))
    return len(moved)
