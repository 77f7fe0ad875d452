"""An agent's page: big content (its output, its steps) is fetched on demand; what it shows is
built in ``runs.pages.agent``."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from runs.access import AuthenticatedHttpRequest, get_run_for_user
from runs.models import Task
from runs.pages.agent import agent_context


@require_GET
def task_detail(request: AuthenticatedHttpRequest, run_id: int, task_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    task = get_object_or_404(Task, run=run, pk=task_id)
    return render(request, "runs/task.html", agent_context(run, task))
