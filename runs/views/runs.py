"""The runs list, the run page (first render; live updates come from runs/consumers.py) and
the run's full event log, paginated."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs.access import AuthenticatedHttpRequest, get_run_for_user
from runs.pages.events import labelled
from runs.pages.run.live import run_context
from runs.pages.runs_list import list_context


@require_GET
def run_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "runs/list.html", list_context(request.user, request.GET))


@require_GET
def run_detail(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/detail.html", run_context(run, request.user, request.GET.dict()))


PER_PAGE = 100


@require_GET
def events(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    rows = run.events.select_related("task").order_by("-seq")
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = labelled(page.object_list)
    return render(request, "runs/events.html", {"run": run, "page": page})
