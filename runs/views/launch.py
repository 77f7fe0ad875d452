"""Launching a run from the browser (operators only), and its estimate before launch."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_http_methods

from harness_site.workers import worker_slots
from runs.access import AuthenticatedHttpRequest, require_perm
from runs.actions import LaunchError, launch_run
from runs.forms import LaunchForm
from runs.forms.estimate import Estimate, estimate_launch


@require_http_methods(["GET", "POST"])
def launch(request: AuthenticatedHttpRequest) -> HttpResponse:
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
    return render(request, "runs/launch.html", _page(form, None), status=status)


@require_http_methods(["GET", "POST"])
def estimate(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The estimate of the form's current values, POSTed: htmx gets the estimate panel (and the
    document select, refilled from the target, out of band); the form's Estimate button without
    JS gets the whole launch page with the estimate in it. A POST, not a GET: the form carries
    its CSRF token, which a GET would put in the URL (history, logs, Referer). A GET (an old
    link) goes to the launch page. ``use_budget_usd`` (the over-budget warning's button) sets
    the budget before estimating."""
    require_perm(request.user, "runs.launch_run")
    if request.method == "GET":
        return redirect("runs:launch")
    data = request.POST.copy()
    chosen = data.get("use_budget_usd")
    if chosen:
        data["budget_usd"] = str(chosen)
    form = LaunchForm(data)
    result = estimate_launch(form)
    if request.htmx:
        # 200 even for bad input: htmx swaps only successful responses, and the panel is where
        # the message belongs.
        context = {"estimate": result, "form": form}
        html = render_to_string("runs/launch.html#estimate", context, request)
        html += render_to_string(
            "runs/launch.html#document-field", {**context, "oob": True}, request
        )
        return HttpResponse(html)
    status = 400 if result.problems else 200
    return render(request, "runs/launch.html", _page(form, result), status=status)


def _page(form: LaunchForm, result: Estimate | None) -> dict[str, Any]:
    return {
        "form": form,
        "estimate": result,
        # (bound field, names of the playbooks it applies to, their titles)
        "option_fields": [
            (form[name], " ".join(names), ", ".join(form.playbooks[n].title for n in names))
            for name, names in form.option_playbooks.items()
        ],
        "role_fields": [form[name] for name in form.role_fields],
        "role_errors": any(form[name].errors for name in form.role_fields),
        "selected_aggregation": form["aggregation"].value() or [],
        "worker_slots": worker_slots(),
    }
