"""Launching a run from the browser (operators only)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from harness_site.workers import worker_slots
from runs.access import require_perm
from runs.actions import LaunchError, launch_run
from runs.forms import LaunchForm


@require_http_methods(["GET", "POST"])
def launch(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, "runs.launch_run")
    form = LaunchForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = launch_run(user=request.user, **form.launch_kwargs())
        except LaunchError as exc:
            # launch_run creates nothing when it raises; the message lands on the field it names.
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, str(exc))
        else:
            messages.success(request, f"Run #{run.pk} launched.")
            return redirect(run)
    status = 400 if form.is_bound else 200
    return render(
        request,
        "runs/launch.html",
        {
            "form": form,
            "role_fields": [form[name] for name in form.role_fields],
            "role_errors": any(form[name].errors for name in form.role_fields),
            "selected_aggregation": form["aggregation"].value() or [],
            "worker_slots": worker_slots(),
        },
        status=status,
    )
