"""An evaluation's scorecard: its page and its CSV export (the JSON export is the report's)."""

from __future__ import annotations

import csv
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from agents.evaluation.scorecard import csv_rows
from runs.access import AuthenticatedHttpRequest, get_run_for_user
from runs.models import Report, Run
from runs.pages.scorecard import scorecard_context, scorecard_of


def _scorecard(
    request: AuthenticatedHttpRequest, run_id: int, version: int
) -> tuple[Run, Report, dict[str, Any]]:
    """The run, the report version and its scorecard, or 404 (no such run for this user, no
    such version, or a report that is not an evaluation's)."""
    run = get_run_for_user(request.user, run_id)
    report = get_object_or_404(Report, run=run, version=version)
    card = scorecard_of(report)
    if card is None:
        raise Http404("This report has no scorecard (not an evaluation).")
    return run, report, card


@require_GET
def scorecard(request: AuthenticatedHttpRequest, run_id: int, version: int) -> HttpResponse:
    run, report, card = _scorecard(request, run_id, version)
    context = {"run": run, "report": report, **scorecard_context(card)}
    return render(request, "runs/scorecard.html", context)


@require_GET
def scorecard_csv(request: AuthenticatedHttpRequest, run_id: int, version: int) -> HttpResponse:
    run, report, card = _scorecard(request, run_id, version)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="run-{run.pk}-scorecard-v{report.version}.csv"'
    )
    writer = csv.writer(response)
    for row in csv_rows(card):
        # A cell starting with = + - @ is a formula to a spreadsheet: dataset text is untrusted.
        writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in "=+-@" else v for v in row])
    return response
