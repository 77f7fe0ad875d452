"""The runs list and the run page (first render; live updates come from runs/consumers.py)."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs.access import get_run_for_user
from runs.forms import RunFilterForm
from runs.models import Event, Run
from runs.models.run import RunQuerySet
from runs.pages.run import dashboard
from runs.pages.run.live import EVENTS_IN_PAGE, panel_context, tree_context

RUNS_PER_PAGE = 25


def filtered_runs(user: Any, params: dict[str, str]) -> tuple[RunQuerySet, str, str]:
    """The runs ``user`` may see, narrowed by the list's filters (shared with the consumer)."""
    runs = Run.objects.visible_to(user).select_related("launched_by")
    status = params.get("status", "")
    playbook = params.get("playbook", "")
    if status == "active":
        runs = runs.active()
    elif status in Run.Status.values:
        runs = runs.filter(status=status)
    else:
        status = ""
    if playbook:
        runs = runs.filter(playbook=playbook)
    return runs, status, playbook


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    runs, status, playbook = filtered_runs(request.user, request.GET.dict())
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    visible = Run.objects.visible_to(request.user)
    prefix = request.GET.copy()
    prefix.pop("page", None)
    return render(
        request,
        "runs/list.html",
        {
            "page": page,
            "filter_form": RunFilterForm(),
            "filter_status": status,
            "filter_playbook": playbook,
            "playbook_names": sorted(set(visible.values_list("playbook", flat=True))),
            "active_count": visible.active().count(),
            "query_prefix": f"{prefix.urlencode()}&" if prefix else "",
        },
    )


@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    tasks = dashboard.load_tasks(run)
    events = list(
        Event.objects.filter(run_id=run.pk).select_related("task").order_by("-seq")[:EVENTS_IN_PAGE]
    )
    context = {
        **panel_context(run, tasks, request.user),
        **tree_context(run, tasks, request.GET.dict()),
        "events": events,
    }
    return render(request, "runs/detail.html", context)
