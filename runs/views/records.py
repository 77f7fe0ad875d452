"""Read-only pages behind the run page: one agent (big content fetched on demand), the full
event log and all findings, paginated. What they show is built in ``runs.pages``."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from runs.access import AuthenticatedHttpRequest, get_run_for_user
from runs.models import Task
from runs.pages.agent import agent_context
from runs.pages.findings import findings_context

PER_PAGE = 100


@require_GET
def task_detail(request: AuthenticatedHttpRequest, run_id: int, task_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    task = get_object_or_404(Task, run=run, pk=task_id)
    return render(request, "runs/task.html", agent_context(run, task))


@require_GET
def events(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    rows = run.events.select_related("task").order_by("-seq")
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "runs/events.html", {"run": run, "page": page})


@require_GET
def findings(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/findings.html", findings_context(run, request.GET.dict()))
