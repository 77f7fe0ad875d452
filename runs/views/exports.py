"""A stored report version: its provenance page (every cluster → findings, agents, lenses,
votes) with the list of versions, and its exports (Markdown, JSON, SARIF) as downloads."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from agents.aggregation.exports import FORMATS, export
from runs.access import get_run_for_user
from runs.exports import report_document
from runs.models import Report


@require_GET
def report_version(request: HttpRequest, run_id: int, version: int) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    report = get_object_or_404(Report, run=run, version=version)
    return render(
        request,
        "runs/report.html",
        {
            "run": run,
            "report": report,
            "doc": report_document(run, report),
            "versions": run.reports.order_by("-version").only(
                "version", "chain", "params", "stats", "created_at"
            ),
            "formats": list(FORMATS),
        },
    )


@require_GET
def report_export(request: HttpRequest, run_id: int, version: int, fmt: str) -> HttpResponse:
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
