"""Operator and reviewer actions on a run: POST only, permission checked here, then redirect."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from runs.access import AuthenticatedHttpRequest, get_run_for_user, require_perm
from runs.actions import (
    DecisionRefused,
    RetryRefused,
    cancel_run,
    request_extension,
    retry_failed,
)
from runs.models import Run


def _operated_run(request: AuthenticatedHttpRequest, run_id: int) -> Run:
    """A run the user may see and operate (cancel, retry, ask for budget): operators only."""
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.cancel_run")
    return run


@require_POST
def cancel(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = _operated_run(request, run_id)
    if cancel_run(run, request.user):
        messages.success(request, f"Run #{run.pk} is being cancelled.")
    else:
        messages.error(request, f"Run #{run.pk} can no longer be cancelled ({run.status}).")
    return redirect(run)


@require_POST
def retry(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = _operated_run(request, run_id)
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
def extend(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """Ask for more budget for a run whose budget ran out (operators); a reviewer decides."""
    run = _operated_run(request, run_id)
    try:
        gate = request_extension(
            run,
            request.user,
            request.POST.get("budget_usd", "")[:40],
            request.POST.get("comment", "")[:5000],
        )
    except DecisionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Extension requested: {gate.target_label}.")
    return redirect(run)
