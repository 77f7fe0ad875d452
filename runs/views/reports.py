"""A stored report version: its provenance page (every cluster → findings, agents, lenses,
votes) with the list of versions, its exports (Markdown, JSON, SARIF) as downloads, and an
operator's re-aggregation of the stored findings into a new version."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from agents.aggregation.compare import Change, compare
from agents.aggregation.exports import FORMATS, export
from runs.access import AuthenticatedHttpRequest, get_run_for_user, require_perm
from runs.actions.report import ReaggregateRefused, reaggregate
from runs.forms import ReaggregateForm
from runs.models import Finding, Report, Run
from runs.pages.decisions import changes_requested, report_decision
from runs.pages.report import report_document


@require_GET
def report_version(request: AuthenticatedHttpRequest, run_id: int, version: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    report = get_object_or_404(Report, run=run, version=version)
    comparison = None
    against = request.GET.get("compare", "")
    if against.isdigit() and int(against) != report.version:
        other = run.reports.filter(version=int(against)).first()
        if other is not None:
            older, newer = sorted((other, report), key=lambda r: r.version)
            comparison = compare(older.clusters, newer.clusters, (older.version, newer.version))
            _say_dismissed(comparison.dropped, run)
    return render(
        request,
        "runs/report.html",
        {
            "comparison": comparison,
            "run": run,
            "report": report,
            "doc": report_document(run, report),
            "decision": report_decision(run, report),
            "changes_requested": changes_requested(run, report),
            "versions": run.reports.order_by("-version").only(
                "version", "chain", "params", "stats", "created_at"
            ),
            "formats": list(FORMATS),
            "form": ReaggregateForm(initial={"chain": report.chain, **(report.params or {})}),
        },
    )


def _say_dismissed(dropped: list[Change], run: Run) -> None:
    """A dropped item whose findings a reviewer dismissed says so (the stored clusters cannot:
    the dismissal came after them)."""
    ids = [f for c in dropped if not c.why for f in c.finding_ids]
    dismissed = set(
        Finding.objects.filter(run=run, pk__in=ids, review=Finding.Review.DISMISSED).values_list(
            "pk", flat=True
        )
    )
    for change in dropped:
        if not change.why and change.finding_ids and set(change.finding_ids) <= dismissed:
            change.why = "dismissed by a reviewer"


@require_POST
def reaggregate_report(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    require_perm(request.user, "runs.launch_run")
    form = ReaggregateForm(request.POST)
    latest = run.reports.order_by("-version").first()
    if not form.is_valid():
        messages.error(request, "Check the re-aggregation settings: " + form.errors.as_text())
    else:
        try:
            report = reaggregate(run, request.user, form.cleaned_data["chain"], form.overrides())
        except ReaggregateRefused as exc:
            messages.error(request, f"Re-aggregation refused: {exc}")
        else:
            messages.success(request, f"Report v{report.version} made from the stored findings.")
            return redirect("runs:report", run.pk, report.version)
    if latest is None:
        return redirect(run)
    return redirect("runs:report", run.pk, latest.version)


@require_GET
def report_export(
    request: AuthenticatedHttpRequest, run_id: int, version: int, fmt: str
) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    if fmt not in FORMATS:
        raise Http404("No such export format")
    report = get_object_or_404(Report, run=run, version=version)
    content_type, extension = FORMATS[fmt]
    body = export(report_document(run, report, request.build_absolute_uri), fmt)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="run-{run.pk}-report-v{report.version}.{extension}"'
    )
    return response
