"""Aggregate a finished run: gather its findings and facts, run the chain, store the report
(a new version each time), request the reviewer's decision and close the run's trace."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import DatabaseError, transaction
from django.utils import timezone

from agents.aggregation.records import ROW_COLUMNS, FindingRow
from agents.aggregation.similarity import embedder_for
from agents.aggregation.stages import ReportDraft, RunFacts, run_chain
from agents.playbooks import REPORT_STEPS
from agents.providers.catalog import get_provider
from agents.snapshot import open_snapshot
from agents.wording import count, were
from runs.actions.judged import add_judging, judged_result, winner_rows
from runs.actions.reconcile import reconcile
from runs.actions.report_steps import add_model_step_facts
from runs.actions.scorecard import add_scorecard
from runs.allowances import SKIP_PREFIX
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Approval, Finding, Report, Run, Task
from runs.observability.tracing import end_run_trace_after_commit, run_span
from runs.rendering import render_markdown
from runs.run_budget import spent_reason

logger = logging.getLogger(__name__)


def aggregate(run_id: int) -> None:
    """Idempotent: does nothing unless the run is aggregating (or budget-exhausted without a
    report yet) and every task is terminal."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.status == Run.Status.BUDGET_EXHAUSTED:
        if (
            run.reports.exists()
            or Task.objects.filter(run=run).exclude(status__in=Task.Status.terminal()).exists()
        ):
            return
    elif run.status != Run.Status.AGGREGATING:
        return
    # The report states the run's cost: every ended agent's calls, whatever befell the run.
    if reconcile(run.pk) is not None:
        run.refresh_from_db()
    rows, facts, snapshot = _gather(run, {})
    synthesis_input = add_model_step_facts(run, facts)
    playbook = run.resolved_playbook
    judged = judged_result(run)
    if judged is not None:  # a judged ensemble reports its winning candidate's findings
        rows = winner_rows(judged, rows, facts)
    embedder = embedder_for(run.provider, facts.options)
    chain = list(run.aggregation or playbook.aggregation)
    with run_span(run, "aggregate", **{"harness.aggregation.chain": chain}) as span:
        try:
            draft = run_chain(rows, facts, chain, embedder, snapshot)
            if synthesis_input:
                draft.params["synthesis_input"] = synthesis_input
            if facts.model_narrative:  # for the exports (model output: they escape it)
                draft.params["model_summary"] = {
                    "by": facts.model_narrative_by,
                    "text": facts.model_narrative,
                }
            if playbook.decomposition == "evaluation":
                add_scorecard(run, draft, is_llm=facts.is_llm)
            if judged is not None:
                add_judging(judged, draft)
            note_dismissed(run, draft)
            store_report(run, draft)
        except DatabaseError:
            raise  # transient: the message is retried, and the sweeper asks again
        except Exception as exc:
            # The same findings would fail the same way at every retry: a run left aggregating
            # forever looks alive. It fails, saying why; its agents' findings stay stored.
            logger.exception("aggregating run %s failed", run.pk)
            _aggregation_failed(run, f"aggregation failed: {type(exc).__name__}: {exc}"[:500])
            return
        span.set_attribute("harness.findings", len(rows))


def _aggregation_failed(run: Run, reason: str) -> None:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.transition(Run.Status.FAILED, reason):
            record_event(run, EventType.RUN_FAILED, {"reason": reason})
            end_run_trace_after_commit(run)


class ReaggregateRefused(Exception):
    """Why a run cannot be re-aggregated now (shown to the operator as-is)."""


# Runs whose agents are all done and that already have a report: their stored findings can be
# aggregated again without touching the run's status.
REAGGREGATABLE = (
    Run.Status.AWAITING_REVIEW,
    Run.Status.APPROVED,
    Run.Status.REJECTED,
    Run.Status.BUDGET_EXHAUSTED,
)


def reaggregate(
    run: Run, user: User, chain: list[str] | None = None, options: dict[str, Any] | None = None
) -> Report:
    """A new report version of a finished run from its stored findings, with another chain
    and/or other tunables (``dedup_threshold``, ``line_window``, ``vote_quorum``,
    ``lens_quorum``, ``min_confidence``, ``top_k``, ``embedder``). The run's status is left as
    it is; a report still waiting for review is replaced by the new version at the gate."""
    if run.status not in REAGGREGATABLE or not run.reports.exists():
        raise ReaggregateRefused(f"run #{run.pk} has no finished report to redo ({run.status})")
    rows, facts, snapshot = _gather(run, options or {})
    judged = judged_result(run)
    if judged is not None:
        rows = winner_rows(judged, rows, facts)
    chain = list(chain or run.aggregation or run.resolved_playbook.aggregation)
    try:
        draft = run_chain(rows, facts, chain, embedder_for(run.provider, facts.options), snapshot)
    except ValueError as exc:
        raise ReaggregateRefused(str(exc)) from None
    if run.tasks.filter(step__in=REPORT_STEPS).exists():
        draft.notes.append(
            "Re-aggregated without model calls: the model-written summary and critique belong "
            "to the run's first version; this version's summary is the template."
        )
    if run.resolved_playbook.decomposition == "evaluation":
        add_scorecard(run, draft, is_llm=facts.is_llm)
    if judged is not None:
        add_judging(judged, draft)
    note_dismissed(run, draft)
    draft.params["requested_by"] = getattr(user, "username", "")
    draft.params["overrides"] = dict(options or {})
    return store_report(run, draft, new_version=True)


def _vendored_files(run: Run) -> list[dict[str, Any]]:
    """The third-party files the run's agents skipped, as their outputs list them (the
    heuristic provider's ``data.skipped``; agent output, so only small dicts are kept)."""
    lists = Task.objects.filter(run=run, status=Task.Status.SUCCEEDED).values_list(
        "output__data__skipped", flat=True
    )
    return [
        {"path": str(item.get("path", ""))[:500], "reason": str(item.get("reason", ""))[:200]}
        for value in lists
        if isinstance(value, list)
        for item in value[:1000]
        if isinstance(item, dict)
    ]


def _gather(run: Run, overrides: dict[str, Any]) -> tuple[list[FindingRow], RunFacts, Any]:
    """The run's findings, the facts the report needs, and its snapshot (None if missing).
    Findings a reviewer dismissed are left out (``note_dismissed`` says so in the version's
    notes); accepted and open ones are kept."""
    playbook = run.resolved_playbook
    rows = [
        FindingRow(**values)
        for values in Finding.objects.filter(run=run)
        .exclude(review=Finding.Review.DISMISSED)
        .exclude(verdict="rejected")  # by the depth tier: listed apart (``note_dismissed``)
        .values(*ROW_COLUMNS)
    ]
    tasks = list(
        Task.objects.filter(run=run).values("status", "scope_label", "step", "summary", "error")
    )
    try:
        is_llm = bool(getattr(get_provider(run.provider), "is_llm", False))
    except Exception:
        is_llm = False
    try:
        snapshot = open_snapshot(run.snapshot_ref)
        skipped_files = snapshot.manifest.skipped
    except Exception:
        # No snapshot to check against: locations stay "unchecked", never "verified".
        snapshot = None
        skipped_files = []
    facts = RunFacts(
        run_id=run.pk,
        playbook=playbook.name,
        playbook_title=playbook.title,
        target=run.target_label,
        status=run.status,
        provider=run.provider,
        is_llm=is_llm,
        agents={
            "total": len(tasks),
            "succeeded": sum(t["status"] == Task.Status.SUCCEEDED for t in tasks),
            "failed": sum(t["status"] == Task.Status.FAILED for t in tasks),
            "skipped": sum(
                t["status"] in (Task.Status.SKIPPED, Task.Status.CANCELLED) for t in tasks
            ),
        },
        cost_usd=f"{run.cost_usd:.6f}",
        budget_usd=f"{run.budget_usd:.2f}" if run.budget_usd is not None else None,
        unpriced_calls=run.unpriced_calls,
        tokens={"input": run.tokens_in, "output": run.tokens_out},
        skipped_files=list(skipped_files),
        failed_scopes=[t["scope_label"] for t in tasks if t["status"] == Task.Status.FAILED],
        skipped_scopes=[
            t["scope_label"]
            for t in tasks
            if t["status"] in (Task.Status.SKIPPED, Task.Status.CANCELLED)
        ],
        options={**playbook.options, **overrides},
        unread_by_allowance=[
            t["scope_label"]
            for t in tasks
            if t["status"] == Task.Status.SKIPPED and t["error"].startswith(SKIP_PREFIX)
        ],
        vendored_files=_vendored_files(run),
        synthesis_texts=[
            t["summary"]
            for t in tasks
            if t["step"] == "synthesize" and t["status"] == Task.Status.SUCCEEDED
        ],
    )
    return rows, facts, snapshot


def note_dismissed(run: Run, draft: ReportDraft) -> None:
    """Say in the version's notes how many findings ``_gather`` left out: dismissed by a
    reviewer, rejected by the depth tier."""
    n = Finding.objects.filter(run=run, review=Finding.Review.DISMISSED).count()
    if n:
        draft.notes.append(
            f"{count(n, 'finding')} dismissed by a reviewer {were(n)} left out of this version."
        )
    rejected = Finding.objects.filter(run=run, verdict="rejected").count()
    if rejected:
        draft.notes.append(
            f"{count(rejected, 'finding')} rejected by the depth tier {were(rejected)} left out "
            "of this version (listed under Rejected by the depth tier)."
        )


def store_report(run: Run, draft: ReportDraft, new_version: bool = False) -> Report:
    """Save the run's report, request the reviewer's decision, and finish the run. A run that
    already finished keeps its report (duplicate deliveries) unless ``new_version`` is asked
    for (``reaggregate``): then the version is added without touching the run's status."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        # Duplicate aggregate messages (at-least-once delivery, several dispatchers noticing the
        # end at once) must not make duplicate reports: only the first store wins.
        finishing = run.status == Run.Status.AGGREGATING or (
            run.status == Run.Status.BUDGET_EXHAUSTED and run.finished_at is None
        )
        if not finishing and not new_version:
            latest = run.reports.order_by("-version").first()
            if latest is not None:
                return latest
        version = (
            run.reports.order_by("-version").values_list("version", flat=True).first() or 0
        ) + 1
        report = Report.objects.create(
            run=run,
            version=version,
            chain=draft.chain,
            clusters=[c.to_dict() for c in draft.clusters],
            stats=draft.stats,
            source_text=draft.markdown,
            html=render_markdown(draft.markdown),
            notes=draft.notes + draft.critique,
            params=draft.params,
        )
        record_event(run, EventType.REPORT_CREATED, {"version": version, **draft.stats})
        # A re-aggregated version goes to the gate only while a decision is still to be made;
        # an approved or rejected run keeps its decision and gains a version to compare.
        if finishing or run.status in (Run.Status.AWAITING_REVIEW, Run.Status.BUDGET_EXHAUSTED):
            Approval.objects.filter(
                run=run, gate=Approval.Gate.REPORT, decision=Approval.Decision.PENDING
            ).delete()
            Approval.objects.create(
                run=run,
                gate=Approval.Gate.REPORT,
                target_id=report.pk,
                target_label=f"Report v{version}",
            )
            record_event(run, EventType.APPROVAL_REQUESTED, {"gate": "report", "version": version})
        if run.status == Run.Status.AGGREGATING:
            run.transition(Run.Status.AWAITING_REVIEW)
            record_event(run, EventType.RUN_AWAITING_REVIEW, {})
        elif finishing and run.status == Run.Status.BUDGET_EXHAUSTED:
            # Every agent has ended and paid for its calls: the reason states the final spend,
            # where the one written when the budget ran out knew only what had settled then.
            run.status_reason = spent_reason(run)[:500]
            Run.objects.filter(pk=run.pk).update(
                finished_at=timezone.now(), status_reason=run.status_reason
            )
        if finishing:
            end_run_trace_after_commit(run)
    return report
