"""Operator and reviewer actions on a run: POST only, permission checked here, then redirect."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from runs.access import get_run_for_user, require_perm
from runs.actions import RetryRefused, cancel_run, decide_approval, retry_failed
from runs.forms import DecisionForm
from runs.models import Approval


@require_POST
def cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.cancel_run")
    if cancel_run(run, request.user):
        messages.success(request, f"Run #{run.pk} is being cancelled.")
    else:
        messages.error(request, f"Run #{run.pk} can no longer be cancelled ({run.status}).")
    return redirect(run)


@require_POST
def retry(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.cancel_run")
    try:
        count = retry_failed(run, request.user)
    except RetryRefused as exc:
        messages.error(request, f"Retry refused: {exc}")
        return redirect(run)
    if count:
        messages.success(request, f"Re-queued {count} failed agent{'s' if count != 1 else ''}.")
    else:
        messages.error(request, "No failed agent could be retried.")
    return redirect(run)


@require_POST
def decide(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.decide_approval")
    form = DecisionForm(request.POST)
    approval = run.approvals.filter(
        gate=Approval.Gate.REPORT, decision=Approval.Decision.PENDING
    ).first()
    if not form.is_valid():
        messages.error(request, "Choose approve or reject.")
    elif approval is None:
        messages.error(request, "There is no report waiting for a decision.")
    elif decide_approval(
        approval, request.user, form.cleaned_data["decision"], form.cleaned_data["comment"]
    ):
        messages.success(request, f"Report {form.cleaned_data['decision']}.")
    else:
        messages.error(request, "Someone else decided first.")
    return redirect(run)
