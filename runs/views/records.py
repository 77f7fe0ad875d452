"""Read-only pages behind the run page: one agent (big content fetched on demand), the full
event log and all findings, paginated."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from runs.access import get_run_for_user
from runs.models import Event, Finding, Task
from runs.pages import agent as attempts
from runs.pages.findings import load_ranked, ranked_ids, report_ranks

PER_PAGE = 100


@require_GET
def task_detail(request: HttpRequest, run_id: int, task_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    task = get_object_or_404(Task, run=run, pk=task_id)
    ranks = report_ranks(run)
    rows = (
        Event.objects.filter(run_id=run.pk, task_id=task.pk, type__in=attempts.KINDS)
        .order_by("seq")
        .values_list("type", "created_at", "payload")
    )
    return render(
        request,
        "runs/task.html",
        {
            "run": run,
            "task": task,
            "findings": load_ranked(ranked_ids(task.findings.all(), ranks), ranks),
            "steps": task.steps.all(),
            "history": attempts.history(list(rows)),
            **_analysis_notes(task),
        },
    )


def _analysis_notes(task: Task) -> dict[str, Any]:
    """What the agent kept out of its findings, and said so in its output: findings under a
    ``# nosec``/``# noqa`` marker, third-party files it skipped, findings past its output cap.
    The output is the agent's (untrusted) data: only lists of small dicts are shown, escaped."""
    data = (task.output or {}).get("data") or {}

    def rows(key: str) -> list[dict[str, Any]]:
        value = data.get(key)
        return [r for r in value if isinstance(r, dict)][:200] if isinstance(value, list) else []

    dropped = data.get("dropped_findings")
    return {
        "suppressed": rows("suppressed"),
        "skipped_files": rows("skipped"),
        "dropped": dropped if isinstance(dropped, dict) else None,
    }


@require_GET
def events(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    rows = run.events.select_related("task").order_by("-seq")
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "runs/events.html", {"run": run, "page": page})


@require_GET
def findings(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    rows = run.findings.all()
    severity = request.GET.get("severity", "")
    if severity in Finding.Severity.values:
        rows = rows.filter(severity=severity)
    else:
        severity = ""
    # In the report's order: the ids of every finding are ranked, then the page's are loaded.
    ranks = report_ranks(run)
    page = Paginator(ranked_ids(rows, ranks), PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "runs/findings.html",
        {
            "run": run,
            "page": page,
            "findings": load_ranked(page.object_list, ranks, rows),
            "severity": severity,
            "severities": Finding.Severity.choices,
            "query_prefix": f"severity={severity}&" if severity else "",
        },
    )
