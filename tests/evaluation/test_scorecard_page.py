"""The scorecard page and its CSV: charts server-side, dataset text escaped, linked from the
report."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from agents.evaluation.scorecard import Judgement, build_scorecard
from agents.playbooks import PLAYBOOKS
from runs.models import Report, Run
from tests.runs.factories import make_run

pytestmark = pytest.mark.django_db
HOSTILE = "<script>alert(1)</script>"


def _run_with_card() -> tuple[Run, Report]:
    run = make_run(
        playbook="evaluation",
        config=PLAYBOOKS["evaluation"].to_config(),
        status=Run.Status.AWAITING_REVIEW,
    )
    judgements = [
        Judgement(v, item, "clarity", "judge-0", score, f"why {item}")
        for v, scores in (("a", [2, 3, 1]), ("b", [4, 3, 5]))
        for item, score in zip(["1", "2", HOSTILE], scores, strict=True)
    ]
    card = build_scorecard(judgements, ["clarity"])
    report = Report.objects.create(run=run, version=1, params={"scorecard": card})
    return run, report


def test_the_scorecard_page_draws_means_distributions_and_deltas(viewer_client: Client) -> None:
    run, report = _run_with_card()
    response = viewer_client.get(reverse("runs:scorecard", args=[run.pk, report.version]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="chart scorecard-means"' in html
    assert 'class="chart distribution"' in html
    assert 'class="chart ab-deltas"' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "win rate of B" in html
    page = viewer_client.get(reverse("runs:report", args=[run.pk, report.version]))
    assert reverse("runs:scorecard", args=[run.pk, report.version]) in page.content.decode()


def test_the_scorecard_csv_has_one_row_per_item(viewer_client: Client) -> None:
    run, report = _run_with_card()
    response = viewer_client.get(reverse("runs:scorecard_csv", args=[run.pk, report.version]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == "id,variant,clarity,clarity_rationale"
    assert len(lines) == 1 + 6


def test_a_report_without_scorecard_has_no_page(viewer_client: Client) -> None:
    run = make_run()
    report = Report.objects.create(run=run, version=1)
    url = reverse("runs:scorecard", args=[run.pk, report.version])
    assert viewer_client.get(url).status_code == 404


def test_anonymous_is_sent_to_login() -> None:
    run, report = _run_with_card()
    response = Client().get(reverse("runs:scorecard", args=[run.pk, report.version]))
    assert response.status_code in (302, 403)
