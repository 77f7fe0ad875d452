"""An evaluation's scorecard: its page and its CSV export (the JSON export is the report's)."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from agents.evaluation.scorecard import csv_rows
from runs.access import AuthenticatedHttpRequest, get_run_for_user, require_perm
from runs.actions.calibration import record_human_scores
from runs.forms.calibration import parse_scores
from runs.models import Report, Run
from runs.pages.calibration import calibration_context
from runs.pages.scorecard import scorecard_context, scorecard_of

# Who may score items by hand: whoever may decide the run's gates (the reviewer role).
REVIEW_PERM = "runs.decide_approval"


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


def _page(
    request: AuthenticatedHttpRequest, run: Run, report: Report, card: dict[str, Any]
) -> dict[str, Any]:
    may_score = request.user.has_perm(REVIEW_PERM)
    return {
        "run": run,
        "report": report,
        **scorecard_context(card),
        **calibration_context(run, card, request.user, may_score),
    }


@require_GET
def scorecard(request: AuthenticatedHttpRequest, run_id: int, version: int) -> HttpResponse:
    run, report, card = _scorecard(request, run_id, version)
    return render(request, "runs/scorecard.html", _page(request, run, report, card))


@require_POST
def calibrate(request: AuthenticatedHttpRequest, run_id: int, version: int) -> HttpResponse:
    """A reviewer's hand scores of the sample. With htmx, the calibration section again (its
    agreement recomputed, or the problems with nothing stored); without, back to the page."""
    run, report, card = _scorecard(request, run_id, version)
    require_perm(request.user, REVIEW_PERM)
    cells, problems = parse_scores(request.POST, card)
    text = ""
    if cells:
        saved = record_human_scores(run, request.user, cells)
        text = f"Saved {saved} score{'s' if saved != 1 else ''}."
    if not request.htmx:
        if problems:
            context = {**_page(request, run, report, card), "calibration_problems": problems}
            return render(request, "runs/scorecard.html", context, status=400)
        messages.success(request, text)
        return redirect("runs:scorecard", run.pk, report.version)
    # 200 even for bad input: htmx swaps only successful responses, and the section is where
    # the problems are shown.
    context = {**_page(request, run, report, card), "calibration_problems": problems}
    if not problems:
        context["calibration_saved"] = text
    return render(request, "runs/scorecard.html#calibration", context)


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
