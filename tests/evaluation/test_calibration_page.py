"""The scorecard's calibration section: a reviewer scores the sample (item text from the run's
snapshot, escaped), the agreement is recomputed, bad input stores nothing, and only reviewers
may score."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from agents.evaluation.scorecard import Judgement, build_scorecard
from runs.actions import launch_run
from runs.actions.planning import plan_run
from runs.eventlog.event_types import EventType
from runs.models import Event, Report, Run
from runs.pages.calibration import score_field
from tests.runs.factories import make_run

pytestmark = pytest.mark.django_db
HOSTILE = '<script>alert(1)</script> see <a href="http://evil.example">x</a> http://evil.example'
JUDGED = {"1": 5, "2": 4, "3": 5, "4": 4, "5": 5, "6": 1}


@pytest.fixture(autouse=True)
def _no_enqueue() -> Iterator[mock.MagicMock]:
    with mock.patch("runs.actions.enqueue.send") as enqueue:
        yield enqueue


@pytest.fixture
def evaluation(tmp_path: Path, settings: Any) -> tuple[Run, Report]:
    """A planned evaluation run over six items (item 6 hostile) and a scorecard whose single
    judge gave ``JUDGED``."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    settings.DATA_DIR = tmp_path / "data"
    target = tmp_path / "eval"
    target.mkdir()
    lines = [
        {"id": int(i), "prompt": f"question {i}", "response": f"answer {i}", "reference": "ref"}
        for i in JUDGED
    ]
    lines[-1] = {**lines[-1], "prompt": HOSTILE, "response": HOSTILE}
    (target / "dataset.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = launch_run(
        user=None,
        playbook="evaluation",
        target_path=str(target),
        options={"dimensions": "correctness,clarity"},
    )
    plan_run(run.pk)
    judgements = [
        Judgement("", item, dim, "judge-0", score)
        for item, score in JUDGED.items()
        for dim in ("correctness", "clarity")
    ]
    card = build_scorecard(judgements, ["correctness", "clarity"])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.AWAITING_REVIEW)
    report = Report.objects.create(run=run, version=1, params={"scorecard": card})
    return run, report


def _urls(run: Run, report: Report) -> tuple[str, str]:
    args = [run.pk, report.version]
    return reverse("runs:scorecard", args=args), reverse("runs:scorecard_calibrate", args=args)


def _stored(run: Run) -> list[dict[str, Any]]:
    rows = Event.objects.filter(run=run, type=EventType.EVALUATION_HUMAN_SCORED).order_by("seq")
    return list(rows.values_list("payload", flat=True))


def _htmx(client: Client, url: str, data: dict[str, str]) -> str:
    response = client.post(url, data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.content.decode()


def test_the_reviewer_sees_the_sample_escaped_with_a_score_form(
    evaluation: tuple[Run, Report], reviewer_client: Client
) -> None:
    page, post = _urls(*evaluation)
    html = reviewer_client.get(page).content.decode()
    assert 'id="calibration-form"' in html and f'hx-post="{post}"' in html
    assert html.count('class="calibration-item"') == len(JUDGED)  # all six: fewer than ten
    assert "question 1" in html and "answer 2" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert 'href="http://evil.example"' not in html
    assert f'name="{score_field("", "clarity", "6")}"' in html


def test_a_viewer_sees_results_read_only_and_may_not_post(
    evaluation: tuple[Run, Report], viewer_client: Client
) -> None:
    run, report = evaluation
    page, post = _urls(run, report)
    html = viewer_client.get(page).content.decode()
    assert 'id="calibration-read-only"' in html and 'id="calibration-form"' not in html
    assert 'id="calibration-agreement"' in html
    response = viewer_client.post(post, {score_field("", "clarity", "1"): "3"})
    assert response.status_code == 403
    assert _stored(run) == []


def test_scores_are_stored_as_events_and_the_agreement_updates(
    evaluation: tuple[Run, Report], reviewer_client: Client, reviewer: User
) -> None:
    run, report = evaluation
    _, post = _urls(run, report)
    # The reviewer disagrees with the judges on clarity: low where they were high.
    mine = {"1": "1", "2": "2", "3": "1", "4": "2", "5": "1", "6": "5"}
    data = {score_field("", "clarity", i): s for i, s in mine.items()}
    data[score_field("", "correctness", "1")] = "5"
    data["note||1"] = "too wordy"
    html = _htmx(reviewer_client, post, data)
    assert "Saved 7 scores." in html
    stored = _stored(run)
    assert len(stored) == 7 and {p["by"] for p in stored} == {reviewer.username}
    assert {p["note"] for p in stored if p["item"] == "1"} == {"too wordy"}
    assert html.count("judges disagree with the reviewer") == 1
    assert '<tr data-dimension="clarity"><td>clarity</td>\n  <td class="human-n">6</td>' in html

    # A second look: the reviewer now agrees, and the later scores replace the first ones.
    again = {score_field("", "clarity", i): str(s) for i, s in JUDGED.items()}
    html = _htmx(reviewer_client, post, again)
    assert "judges disagree with the reviewer" not in html
    assert '<td class="human-n">6</td>' in html and '<td class="human-alpha">1.00</td>' in html

    export = reviewer_client.get(reverse("runs:report_export", args=[run.pk, 1, "json"]))
    rows = {r["name"]: r for r in json.loads(export.content)["scorecard"]["dimensions"]}
    assert rows["clarity"]["calibration"]["human_n"] == 6
    assert rows["clarity"]["calibration"]["alpha"] == 1.0
    assert rows["clarity"]["calibration"]["disagrees"] is False
    assert rows["correctness"]["calibration"]["human_n"] == 1
    assert {"mean", "ci_low", "ci_high", "n", "agreement"} <= rows["clarity"].keys()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (score_field("", "clarity", "1"), "6", "a score is a whole number from 1 to 5"),
        (score_field("", "clarity", "1"), "0", "a score is a whole number from 1 to 5"),
        (score_field("", "clarity", "1"), "2.5", "a score is a whole number from 1 to 5"),
        (score_field("", "clarity", "99"), "3", "Unknown item &#x27;99&#x27;."),
        (score_field("", "tone", "1"), "3", "Unknown dimension &#x27;tone&#x27;."),
        ("note||1", "only a note", "a note needs a score"),
        ("note||1", "x" * 501, "a note holds at most 500 characters"),
    ],
)
def test_bad_input_gets_a_message_and_stores_nothing(
    evaluation: tuple[Run, Report], reviewer_client: Client, field: str, value: str, message: str
) -> None:
    run, report = evaluation
    _, post = _urls(run, report)
    good = {score_field("", "correctness", "2"): "4"}
    html = _htmx(reviewer_client, post, {**good, field: value})
    assert 'id="calibration-problems"' in html and message in html
    assert _stored(run) == []


def test_an_empty_form_saves_nothing_and_says_so(
    evaluation: tuple[Run, Report], reviewer_client: Client
) -> None:
    run, report = evaluation
    _, post = _urls(run, report)
    html = _htmx(reviewer_client, post, {score_field("", "clarity", "1"): "", "note||1": ""})
    assert "Nothing to save: score at least one item on one dimension." in html
    assert _stored(run) == []


def test_without_htmx_bad_input_is_a_400_page_and_good_input_redirects(
    evaluation: tuple[Run, Report], reviewer_client: Client
) -> None:
    run, report = evaluation
    page, post = _urls(run, report)
    bad = reviewer_client.post(post, {score_field("", "clarity", "1"): "9"})
    assert bad.status_code == 400 and "from 1 to 5" in bad.content.decode()
    good = reviewer_client.post(post, {score_field("", "clarity", "1"): "3"})
    assert good.status_code == 302 and good["Location"] == page
    assert [p["score"] for p in _stored(run)] == [3]
    html = reviewer_client.get(page).content.decode()
    assert "Saved 1 score." in html
    assert '<option value="3" selected>3</option>' in html  # the reviewer's own score shown


def test_a_run_whose_snapshot_is_gone_still_offers_the_form(reviewer_client: Client) -> None:
    run = make_run(playbook="evaluation", status=Run.Status.AWAITING_REVIEW)
    card = build_scorecard([Judgement("", "q1", "clarity", "judge-0", 3)], ["clarity"])
    report = Report.objects.create(run=run, version=1, params={"scorecard": card})
    page, post = _urls(run, report)
    html = reviewer_client.get(page).content.decode()
    assert "no longer in the run's snapshot" in html and 'id="calibration-form"' in html
    assert "Saved 1 score." in _htmx(reviewer_client, post, {score_field("", "clarity", "q1"): "3"})
