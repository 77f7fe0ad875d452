"""Run summaries for the command line and the API: the ``launch_run --json`` contract."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from runs.models import Run, Task
from runs.pages.tiers import tier_summary


def max_in_flight(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at the same instant (a finish at t closes before a start at t)."""
    points = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    points.sort(key=lambda p: (p[0], p[1]))
    current = best = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def run_summary(run: Run) -> dict[str, Any]:
    run.refresh_from_db()
    counts = Task.objects.filter(run=run).aggregate(
        total=Count("id"),
        succeeded=Count("id", filter=Q(status=Task.Status.SUCCEEDED)),
        failed=Count("id", filter=Q(status=Task.Status.FAILED)),
        skipped=Count("id", filter=Q(status__in=[Task.Status.SKIPPED, Task.Status.CANCELLED])),
    )
    intervals = [
        (started.timestamp(), finished.timestamp())
        for started, finished in Task.objects.filter(
            run=run, started_at__isnull=False, finished_at__isnull=False
        ).values_list("started_at", "finished_at")
        if started and finished
    ]
    wall = run.duration_seconds or 0.0
    summary = {
        "run_id": run.pk,
        "status": run.status,
        "reason": run.status_reason,
        "agents": counts,
        "max_in_flight": max_in_flight(intervals),
        "cost_usd": float(run.cost_usd),
        "budget_usd": float(run.budget_usd) if run.budget_usd is not None else None,
        "tokens": {"input": run.tokens_in, "output": run.tokens_out},
        "findings": run.findings.count(),
        "events": run.events.count(),
        "wall_seconds": round(wall, 3),
        "unpriced_calls": run.unpriced_calls,
        "provider": run.provider,
    }
    if tiers := tier_summary(run):  # tiered models: each tier's agents, tokens and cost
        summary["tiers"] = tiers
    return summary
