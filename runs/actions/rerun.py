"""Dismiss a finding and re-run only the agents that reported it.

The estimate comes from those agents' own previous try (tokens and cost as stored), checked
against what is left of the run's budget before anything changes. Confirmed, it is one
transaction: the finding is dismissed (the finding gate, as ``review_finding``), the report
version waiting at the gate is superseded (as a budget extension does), and the agents go back
to pending as a new try, like "Retry failed" does for failed ones. When they finish the run
aggregates again into a new version, which leaves the dismissed finding out.

A new try must really call the model again: the agent's stored steps would otherwise be
replayed (that is how a redelivered agent avoids paying twice). ``runs.actions.tries`` keeps
them for the record and the budget, moved past the indexes the new try will use, whose budget
reservations carry the try so they are never mistaken for the settled ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from agents.wording import count
from runs.actions import enqueue
from runs.actions.launch import check_provider
from runs.actions.launch_options import LaunchError
from runs.actions.refusals import DecisionRefused
from runs.actions.review import review_finding
from runs.actions.tries import new_try
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_events
from runs.models import Approval, Finding, Run, Task
from runs.observability.tracing import begin_resume_trace, run_context


@dataclass
class RerunEstimate:
    """What re-running the agents behind one finding would cost, and whether it may."""

    finding: Finding
    tasks: list[Task] = field(default_factory=list)
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced: bool = False  # a previous call had no known price: the cost is a lower bound
    remaining_usd: Decimal | None = None  # None: no USD ceiling
    remaining_tokens: int | None = None
    refusal: str = ""  # why it may not run now ("" when it may)

    @property
    def fits(self) -> bool:
        return not self.refusal


def estimate_rerun(finding: Finding, run: Run | None = None) -> RerunEstimate:
    """The agents behind ``finding``, their previous try's tokens and cost, the run's remaining
    budget, and a refusal in words when the re-run is not possible."""
    run = run or finding.run
    tasks = list(Task.objects.filter(run=run, pk=finding.task_id))
    est = RerunEstimate(
        finding=finding,
        tasks=tasks,
        tokens=sum(t.tokens_in + t.tokens_out for t in tasks),
        cost_usd=sum((t.cost_usd for t in tasks), Decimal(0)),
        unpriced=any(t.unpriced for t in tasks),
    )
    if run.budget_usd is not None:
        est.remaining_usd = max(Decimal(0), run.budget_usd - run.cost_usd)
    if run.budget_tokens is not None:
        est.remaining_tokens = max(0, run.budget_tokens - run.tokens_in - run.tokens_out)
    est.refusal = _refusal(finding, run, est)
    return est


def _refusal(finding: Finding, run: Run, est: RerunEstimate) -> str:
    if finding.review != Finding.Review.OPEN:
        return f"This finding was already {finding.review}."
    if run.status != Run.Status.AWAITING_REVIEW:
        return (
            f"Agents can be re-run only while the run's report waits for review "
            f"(this run is {run.get_status_display().lower()})."
        )
    if not est.tasks or any(t.status != Task.Status.SUCCEEDED for t in est.tasks):
        return "The agent behind this finding has not finished successfully: use Retry failed."
    if est.remaining_usd is not None and est.cost_usd > est.remaining_usd:
        return (
            f"The remaining budget does not cover it: about ${est.cost_usd:.4f} needed, "
            f"${est.remaining_usd:.4f} left. Ask for a larger budget first."
        )
    if est.remaining_tokens is not None and est.tokens > est.remaining_tokens:
        return (
            f"The remaining token budget does not cover it: about {est.tokens:,} tokens "
            f"needed, {est.remaining_tokens:,} left."
        )
    for provider in sorted({t.provider or run.provider for t in est.tasks}):
        try:
            check_provider(provider)
        except LaunchError as exc:
            return str(exc)
    return ""


def dismiss_and_rerun(finding: Finding, user: User, comment: str) -> RerunEstimate:
    """Dismiss ``finding`` and re-run exactly the agents that reported it. Raises
    DecisionRefused, changing nothing, when the estimate refuses or the dismissal is refused."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=finding.run_id)
        finding = Finding.objects.get(pk=finding.pk)
        est = estimate_rerun(finding, run)  # again under the lock: the page's may be stale
        if est.refusal:
            raise DecisionRefused(est.refusal)
        review_finding(finding, user, "dismissed", comment)
        who = user.get_username()
        if not run.transition(
            Run.Status.RUNNING,
            f"re-running {count(len(est.tasks), 'agent')}: finding dismissed by {who}",
        ):
            raise DecisionRefused("The run is no longer waiting for review.")
        run.approvals.filter(gate=Approval.Gate.REPORT, decision="pending").update(
            decision=Approval.Decision.REJECTED,
            comment="Superseded: a finding was dismissed and its agents re-run.",
            decided_at=timezone.now(),
        )
        moved = _new_try(run, est.tasks)
        begin_resume_trace(run)
        record_events(
            run,
            [
                (
                    EventType.RUN_RESUMED,
                    {
                        "by": who,
                        "retrying": len(moved),
                        "finding": finding.pk,
                        "agents": [t.pk for t in moved],
                    },
                    None,
                )
            ]
            + [(EventType.TASK_RETRY_REQUESTED, {}, t) for t in moved],
        )
        enqueue.after_commit(enqueue.DISPATCH_RUN, run.pk, context=run_context(run))
    return est


def _new_try(run: Run, tasks: list[Task]) -> list[Task]:
    """The succeeded agents behind the finding, back to pending for a new try."""
    moved = new_try(run, tasks, Task.Status.SUCCEEDED)
    if len(moved) != len(tasks):
        raise DecisionRefused("An agent behind this finding changed meanwhile: try again.")
    return moved
