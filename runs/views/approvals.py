"""The approvals inbox (its content is ``runs.pages.approvals``) and deciding a gate."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from runs.access import AuthenticatedHttpRequest, get_run_for_user, require_perm
from runs.actions import DecisionRefused, decide_approval, review_finding
from runs.actions.rerun import dismiss_and_rerun, estimate_rerun
from runs.actions.review import decide_task_gates
from runs.forms import BulkDecisionForm, DecisionForm
from runs.models import Approval, Finding, Run
from runs.pages.approvals import (
    GATE_WORDS,
    INBOX_MAX,
    inbox_context,
    inbox_update,
    pending_for,
)


@require_GET
def inbox(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "runs/inbox.html", inbox_context(request.user))


@require_POST
def decide(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """Decide one gate of a run: the ``approval`` the form names, or the run's open report gate
    (the run page's form). Back to where the form was (the inbox or the run)."""
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.decide_approval")
    form = DecisionForm(request.POST)
    back = _back(request)
    if not form.is_valid():
        messages.error(request, "Choose approve, reject or request changes.")
        return redirect(back or run.get_absolute_url())
    wanted = form.cleaned_data.get("approval")
    gates = run.approvals.select_related("decided_by", "run")
    approval = (
        gates.filter(pk=wanted).first()
        if wanted
        else gates.filter(gate=Approval.Gate.REPORT, decision=Approval.Decision.PENDING).first()
    )
    decision = form.cleaned_data["decision"]
    if approval is None:
        messages.error(request, "There is nothing waiting for a decision here.")
    else:
        try:
            decide_approval(approval, request.user, decision, form.cleaned_data["comment"])
        except DecisionRefused as exc:
            messages.error(request, str(exc))
        else:
            word = {"approved": "approved", "rejected": "rejected"}.get(decision)
            what = GATE_WORDS.get(approval.gate, "Gate")
            messages.success(
                request, f"{what} {word}." if word else "Changes requested: the gate stays open."
            )
    return redirect(back or run.get_absolute_url())


def _back(request: AuthenticatedHttpRequest) -> str:
    """The form's ``next`` when it is a page of this site, else ""."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return ""
    return back


@require_POST
def decide_agents(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """Approve or reject at once every agent of a run waiting at its gate, or those of one tree
    group, each gate under the rules of a single decision. Without JS, back to the inbox with
    the outcome; with htmx, the outcome and the inbox's changes (the decided gates go)."""
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.decide_approval")
    shown = {a.pk for a in pending_for(request.user)[:INBOX_MAX]}
    form = BulkDecisionForm(request.POST)
    level, text = "error", "Choose approve or reject, and which agents."
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = decide_task_gates(
                run, request.user, data["decision"], data["comment"], form.group
            )
        except DecisionRefused as exc:
            text = str(exc)
        else:
            level = "success" if result.decided and not result.skipped else "info"
            text = result.summary()
    if request.htmx:
        html = render_to_string(
            "runs/inbox.html#inbox-bulk-result", {"level": level, "text": text}, request
        )
        update, _ = inbox_update(request.user, shown, get_token(request))
        return HttpResponse(html + update)
    messages.add_message(request, getattr(messages, level.upper()), text)
    return redirect(_back(request) or reverse("runs:inbox"))


@require_POST
def review(request: AuthenticatedHttpRequest, run_id: int, finding_id: int) -> HttpResponse:
    """Accept or dismiss one finding (reviewers), then back to the findings page."""
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.decide_approval")
    finding = get_object_or_404(Finding, run=run, pk=finding_id)
    try:
        review_finding(
            finding,
            request.user,
            request.POST.get("decision", ""),
            request.POST.get("comment", "")[:5000],
        )
    except DecisionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Finding {request.POST['decision']}: {finding.title[:120]}")
    page = request.POST.get("page", "")
    return redirect(
        reverse("runs:findings", args=[run.pk]) + (f"?page={page}" if page.isdigit() else "")
    )


@require_http_methods(["GET", "POST"])
def rerun_finding(request: AuthenticatedHttpRequest, run_id: int, finding_id: int) -> HttpResponse:
    """Dismiss a finding and re-run the agents behind it. GET shows which agents and what it
    should cost against the budget left (the page a refusal comes back to); POST does it.
    Dismissing is a reviewer's decision and re-running spends the run's budget like an
    operator's retry: both permissions are needed."""
    run, finding = _rerun_target(request, run_id, finding_id)
    if request.method == "POST":
        try:
            est = dismiss_and_rerun(finding, request.user, request.POST.get("comment", "")[:5000])
        except DecisionRefused as exc:
            messages.error(request, str(exc))
            return redirect(reverse("runs:rerun_finding", args=[run.pk, finding.pk]))
        agents = ", ".join(f"#{t.pk}" for t in est.tasks)
        messages.success(
            request,
            f"Finding dismissed; re-running {_agents(len(est.tasks))} {agents} "
            f"(about ${est.cost_usd:.4f}). A new report version follows when they finish.",
        )
        return redirect(run)
    return _rerun_confirmation(request, run, finding, "")


@require_POST
def rerun_estimate(request: AuthenticatedHttpRequest, run_id: int, finding_id: int) -> HttpResponse:
    """The findings page's "Dismiss & re-run…": the confirmation with the comment typed so far,
    changing nothing. A POST, since the row's form carries the CSRF token: a GET would put the
    token in the URL (logs, Referer, history)."""
    run, finding = _rerun_target(request, run_id, finding_id)
    return _rerun_confirmation(request, run, finding, request.POST.get("comment", ""))


def _rerun_target(
    request: AuthenticatedHttpRequest, run_id: int, finding_id: int
) -> tuple[Run, Finding]:
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.decide_approval")
    require_perm(request.user, "runs.cancel_run")
    return run, get_object_or_404(Finding, run=run, pk=finding_id)


def _agents(n: int) -> str:
    return ngettext("agent", "agents", n)


def _rerun_confirmation(
    request: AuthenticatedHttpRequest, run: Run, finding: Finding, comment: str
) -> HttpResponse:
    context = {"run": run, "est": estimate_rerun(finding, run), "comment": comment[:4000]}
    if request.htmx:
        return render(request, "runs/rerun_confirm.html#rerun-confirm", context)
    return render(request, "runs/rerun_confirm.html", context)
