from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from runs.access import get_run_for_user
from runs.models import Run


def run_list(request: HttpRequest) -> HttpResponse:
    runs = Run.objects.visible_to(request.user).select_related("launched_by")
    page = Paginator(runs, 25).get_page(request.GET.get("page"))
    return render(request, "runs/list.html", {"page": page})


def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/detail.html", {"run": run})
