"""The Findings page: all of a run's findings in the report's order, paginated (built in
``runs.pages.findings``). Deciding one is ``runs.views.approvals``."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs.access import AuthenticatedHttpRequest, get_run_for_user
from runs.pages.findings import findings_context

PER_PAGE = 100


@require_GET
def findings(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/findings.html", findings_context(run, request.GET.dict()))
