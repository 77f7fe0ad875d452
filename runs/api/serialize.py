"""Records as the API shows them (plain dicts in the shapes of ``runs.api.schemas``). What the
run detail adds (in-flight agents, forecast) comes from the run page's own read side,
``runs.pages.run.dashboard``, so the API and the page never disagree."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import timezone

from agents.aggregation.exports import FORMATS
from agents.contract import ProviderError
from agents.providers.catalog import concurrency_cap
from harness_site.workers import worker_slots
from runs.models import Approval, Event, Finding, Report, Run, Step, Task
from runs.pages.run import dashboard
from runs.pages.summary import run_summary


def run_out(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "uid": str(run.uid),
        "title": run.title,
        "playbook": run.playbook,
        "status": run.status,
        "status_reason": run.status_reason,
        "target": run.target_label,
        "target_kind": run.target_kind,
        "provider": run.provider,
        "model": run.model,
        "launched_by": run.launched_by.username if run.launched_by else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "agents": {
            "total": run.tasks_total,
            "succeeded": run.tasks_done,
            "failed": run.tasks_failed,
            "skipped": run.tasks_skipped,
        },
        "findings": run.findings_count,
        "cost_usd": float(run.cost_usd),
        "budget_usd": float(run.budget_usd) if run.budget_usd is not None else None,
        "budget_tokens": run.budget_tokens,
        "tokens": {"input": run.tokens_in, "output": run.tokens_out},
        "url": run.get_absolute_url(),
    }


def _provider_cap(name: str) -> int | None:
    try:
        return concurrency_cap(name)
    except (ProviderError, KeyError, ValueError):
        return None


def run_detail(run: Run) -> dict[str, Any]:
    """The run with its counters, cost, agents in flight and forecast: the run page's figures."""
    summary = run_summary(run)  # refreshes ``run`` from the database first
    tasks = dashboard.load_tasks(run)
    now = timezone.now()
    counts = dashboard.status_counts(tasks)
    slots = worker_slots()
    flight = dashboard.concurrency(
        run,
        tasks,
        now,
        worker_slots=slots.total if slots.known else None,
        workers=slots.count if slots.known else None,
        provider_cap=_provider_cap(run.provider),
        counts=counts,
    )
    budget = dashboard.budget(run, tasks, now)
    latest = run.reports.order_by("-version").values_list("version", flat=True).first()
    return {
        **run_out(run),
        "limits": {
            "max_concurrency": run.max_concurrency,
            "max_depth": run.max_depth,
            "max_agents": run.max_agents,
            "max_children": run.max_children,
            "budget_usd": float(run.budget_usd) if run.budget_usd is not None else None,
            "budget_tokens": run.budget_tokens,
        },
        "in_flight": {
            "running": flight.running,
            "queued": flight.queued,
            "retrying": flight.retrying,
            "awaiting_approval": counts.get(Task.Status.AWAITING_APPROVAL, 0),
            "cap": flight.cap,
            "reason": flight.reason,
        },
        "forecast": {
            "spent_usd": float(budget.spent),
            "forecast_cost_usd": _float(budget.forecast_cost),
            "forecast_finish": budget.forecast_finish,
            "over_budget": budget.over_budget_forecast,
            "remaining_agents": budget.remaining_agents,
            "agents_per_minute": budget.rate_per_minute,
        },
        "statuses": counts,
        "report_version": latest,
        "pending_approvals": run.approvals.filter(decision=Approval.Decision.PENDING).count(),
        "duration_seconds": run.duration_seconds,
        "last_seq": run.last_seq,
        "summary": summary,
    }


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def agent_out(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "parent_id": task.parent_id,
        "depth": task.depth,
        "step": task.step,
        "role": task.role,
        "lens": task.lens,
        "scope": task.scope_label,
        "group": task.group,
        "why": task.why,
        "provider": task.provider,
        "model": task.model,
        "status": task.status,
        "attempts": task.attempts,
        "tokens": {"input": task.tokens_in, "output": task.tokens_out},
        "cost_usd": float(task.cost_usd),
        "queued_at": task.queued_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "error": task.error,
    }


def step_out(step: Step) -> dict[str, Any]:
    return {
        "index": step.index,
        "kind": step.kind,
        "name": step.name,
        "tokens": {"input": step.tokens_in, "output": step.tokens_out},
        "cost_usd": float(step.cost_usd),
        "seconds": step.seconds,
        "created_at": step.created_at,
        # As stored, and as the agent page shows it: what a call keeps was decided when it was
        # stored (prompt and response content only under HARNESS_CAPTURE_CONTENT).
        "data": dict(step.data or {}),
    }


def finding_out(finding: Finding, rank: int | None = None) -> dict[str, Any]:
    return {
        "id": finding.pk,
        "agent_id": finding.task_id,
        "lens": finding.lens,
        "rule": finding.rule,
        "title": finding.title,
        "detail": finding.detail,
        "severity": finding.severity,
        "confidence": finding.confidence,
        "path": finding.path,
        "line_start": finding.line_start,
        "line_end": finding.line_end,
        "cwe": finding.cwe,
        "evidence": finding.evidence,
        "review": finding.review,
        "report_rank": rank,
        "created_at": finding.created_at,
    }


def event_out(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.type,
        "agent_id": event.task_id,
        "payload": event.payload,
        "created_at": event.created_at,
    }


def report_out(run: Run, report: Report) -> dict[str, Any]:
    return {
        "version": report.version,
        "chain": list(report.chain),
        "params": dict(report.params or {}),
        "stats": dict(report.stats or {}),
        "notes": list(report.notes or []),
        "created_at": report.created_at,
        "exports": {
            fmt: reverse("api:report_export", args=[run.pk, report.version, fmt]) for fmt in FORMATS
        },
    }


def approval_out(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.pk,
        "run_id": approval.run_id,
        "gate": approval.gate,
        "target_id": approval.target_id,
        "target_label": approval.target_label,
        "decision": approval.decision,
        "comment": approval.comment,
        "requested_at": approval.requested_at,
        "decided_by": approval.decided_by.username if approval.decided_by else None,
        "decided_at": approval.decided_at,
    }
