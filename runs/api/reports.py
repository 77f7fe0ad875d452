"""/api/v1/runs/{id}/findings/ (and a reviewer's decision on one), /reports/ (the versions, one
version with its provenance, its exports, a re-aggregation into a new version)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Router, Status

from agents.aggregation.exports import ALIASES, FORMATS, export
from runs.access import get_run_for_user, require_perm
from runs.actions import review_finding
from runs.actions.report import reaggregate
from runs.api.auth import granted
from runs.api.pagination import DEFAULT_LIMIT, Page, keyset
from runs.api.problems import Problem
from runs.api.schemas import FindingOut, ReaggregateIn, ReportDetail, ReportOut, ReviewIn
from runs.api.serialize import finding_out, report_out
from runs.forms import ReaggregateForm
from runs.models import Finding, Report
from runs.pages.findings import report_ranks
from runs.pages.report import report_document

router = Router(tags=["findings and reports"])


class FindingPage(Page):
    items: list[FindingOut]


class ReportPage(Page):
    items: list[ReportOut]


@router.get(
    "/{run_id}/findings/",
    response=FindingPage,
    url_name="findings",
    summary="A run's findings (scope: read)",
)
def findings(
    request: HttpRequest,
    run_id: int,
    severity: str = "",
    review: str = "",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Oldest first (a stable order to page through); ``report_rank`` is each finding's rank in
    the latest report version (1 = most urgent; null: not in the report), the Findings page's
    order."""
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    rows = Finding.objects.filter(run=run)
    if severity:
        if severity not in Finding.Severity.values:
            raise Problem(400, f"Unknown severity {severity!r}.", code="bad-parameter")
        rows = rows.filter(severity=severity)
    if review:
        if review not in Finding.Review.values:
            raise Problem(400, f"Unknown review state {review!r}.", code="bad-parameter")
        rows = rows.filter(review=review)
    ranks = report_ranks(run)
    return keyset(rows, cursor, limit, item=lambda f: finding_out(f, ranks.get(f.pk)))


@router.post(
    "/{run_id}/findings/{finding_id}/review/",
    response=FindingOut,
    url_name="review_finding",
    summary="Accept or dismiss a finding (scope: review; role: reviewer)",
)
def review(request: HttpRequest, run_id: int, finding_id: int, body: ReviewIn) -> dict[str, Any]:
    user = granted(request, "review")
    run = get_run_for_user(user, run_id)
    require_perm(user, "runs.decide_approval")
    finding = get_object_or_404(Finding, run=run, pk=finding_id)
    review_finding(finding, user, body.decision, body.comment)
    finding.refresh_from_db()
    return finding_out(finding, report_ranks(run).get(finding.pk))


@router.get(
    "/{run_id}/reports/",
    response=ReportPage,
    url_name="reports",
    summary="A run's report versions, newest first (scope: read)",
)
def reports(
    request: HttpRequest, run_id: int, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    rows = Report.objects.filter(run=run).defer("html", "source_text", "clusters")
    return keyset(
        rows, cursor, limit, key="version", descending=True, item=lambda r: report_out(run, r)
    )


@router.get(
    "/{run_id}/reports/{version}/",
    response=ReportDetail,
    url_name="report",
    summary="One report version with its provenance (scope: read)",
)
def report(request: HttpRequest, run_id: int, version: int) -> dict[str, Any]:
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    found = get_object_or_404(Report, run=run, version=version)
    return {
        **report_out(run, found),
        "document": report_document(run, found, request.build_absolute_uri),
        "html": found.html,
        "source_text": found.source_text,
    }


@router.get(
    "/{run_id}/reports/{version}/export/{fmt}",
    url_name="report_export",
    summary="A report version as Markdown, JSON or SARIF 2.1.0 (scope: read)",
    openapi_extra={
        "responses": {
            200: {
                "description": "The export, as a download.",
                "content": {ctype: {} for ctype, _ in FORMATS.values()},
            }
        }
    },
)
def report_export(request: HttpRequest, run_id: int, version: int, fmt: str) -> HttpResponse:
    """``fmt``: md (or markdown), json or sarif: the dashboard's and ``export_report``'s."""
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    fmt = ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise Problem(
            404, f"No export format {fmt!r}: one of {', '.join(FORMATS)}.", code="not-found"
        )
    found = get_object_or_404(Report, run=run, version=version)
    content_type, extension = FORMATS[fmt]
    body = export(report_document(run, found, request.build_absolute_uri), fmt)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="run-{run.pk}-report-v{found.version}.{extension}"'
    )
    return response


@router.post(
    "/{run_id}/reports/",
    response={201: ReportOut},
    url_name="reaggregate",
    summary="Re-aggregate the stored findings into a new version (scope: launch; role: operator)",
)
def reaggregate_report(request: HttpRequest, run_id: int, body: ReaggregateIn) -> Status[Any]:
    """Another chain and/or other tunables; blank ones are the run's own. Checked by the
    report page's own form, so the bounds and messages are the page's."""
    user = granted(request, "launch")
    run = get_run_for_user(user, run_id)
    require_perm(user, "runs.launch_run")
    data = {k: v for k, v in body.model_dump().items() if v is not None}
    form = ReaggregateForm(data)
    if not form.is_valid():
        errors = [
            {"loc": ["body", name], "msg": str(message), "type": "form"}
            for name, messages in form.errors.items()
            for message in messages
        ]
        first = errors[0]
        raise Problem(
            422,
            f"{first['loc'][1]}: {first['msg']}",
            code="invalid-request",
            title="Invalid request",
            errors=errors,
        )
    made = reaggregate(run, user, form.cleaned_data["chain"] or None, form.overrides())
    return Status(201, report_out(run, made))
