"""An evaluation in Chromium, on a real run (a real worker, the offline judges): its scorecard
draws the charts and tables, a viewer sees the calibration read-only, and a reviewer scores the
sample by hand against the judges and sees the agreement and the disagreement flag update."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from agents.evaluation.calibration import sample_items
from runs.actions import launch_run
from runs.eventlog.event_types import EventType
from runs.models import Event, Run
from runs.pages.calibration import score_field
from tests.browser.conftest import Daphne
from tests.engine.helpers import wait_for_run

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(240)]

SAMPLE = (settings.BASE_DIR / "samples" / "evaluation").resolve()


def test_the_scorecard_renders_and_a_reviewer_calibrates_the_judges(
    page: Page,
    browser: Browser,
    daphne: Daphne,
    celery_worker: Callable[..., Any],
    operator: User,
    viewer: User,
    reviewer: User,
    sign_in: Callable[[Page, User], None],
    screenshot_dir: Path | None,
) -> None:
    celery_worker(concurrency=4, name="calib")
    run = launch_run(
        user=operator,
        playbook="evaluation",
        target_path=str(SAMPLE),
        options={"dimensions": "correctness,safety"},
    )
    run = wait_for_run(run.pk, timeout=180)
    assert run.status == Run.Status.AWAITING_REVIEW
    card = run.reports.get(version=1).params["scorecard"]
    url = f"{daphne.url}/runs/{run.pk}/reports/1/scorecard/"

    # A viewer: the charts and tables, the calibration results, no form.
    sign_in(page, viewer)
    page.goto(url)
    expect(page.locator("svg.scorecard-means .dim-row")).to_have_count(2)
    expect(page.locator("svg.distribution")).to_have_count(2)
    expect(page.locator("#scorecard-items tbody tr")).to_have_count(len(card["items"]))
    expect(page.locator("#calibration-agreement tbody tr")).to_have_count(2)
    expect(page.locator("#calibration-read-only")).to_be_visible()
    expect(page.locator("#calibration-form")).to_have_count(0)

    # A reviewer, in their own session, scores the sample's safety the opposite of the judges.
    reviewing = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    sign_in(reviewing, reviewer)
    reviewing.goto(url)
    form = reviewing.locator("#calibration-form")
    expect(form.locator("fieldset.calibration-item")).to_have_count(10)
    expect(form).to_contain_text("What is the capital of France?")  # item text, as text
    safety = reviewing.locator('#calibration-agreement tr[data-dimension="safety"]')
    expect(safety.locator(".human-n")).to_have_text("0")
    expect(safety).not_to_contain_text("judges disagree with the reviewer")
    judged = {i["id"]: i["scores"]["safety"] for i in card["items"]}
    sample = sample_items(("", i["id"]) for i in card["items"])
    for _, item in sample:
        opposite = str(6 - round(judged[item]))
        form.locator(f'select[name="{score_field("", "safety", item)}"]').select_option(opposite)
    form.locator("button[type=submit]").click()

    saved = reviewing.locator("#calibration-saved")
    expect(saved).to_have_text("Saved 10 scores.")
    safety = reviewing.locator('#calibration-agreement tr[data-dimension="safety"]')
    expect(safety.locator(".human-n")).to_have_text("10")
    expect(safety.locator(".disagree-flag")).to_have_text("judges disagree with the reviewer")
    correctness = reviewing.locator('#calibration-agreement tr[data-dimension="correctness"]')
    expect(correctness.locator(".human-n")).to_have_text("0")
    scored = Event.objects.filter(run=run, type=EventType.EVALUATION_HUMAN_SCORED)
    assert scored.count() == 10
    assert {e.payload["by"] for e in scored} == {reviewer.username}

    # A bad value sent by hand: a message in the section, nothing more stored.
    first = score_field("", "safety", sample[0][1])
    reviewing.evaluate(
        '([name]) => { const s = document.querySelector(`select[name="${name}"]`);'
        " s.options[1].value = '9'; s.value = '9'; }",
        [first],
    )
    reviewing.locator("#calibration-form button[type=submit]").click()
    expect(reviewing.locator("#calibration-problems")).to_contain_text("from 1 to 5")
    assert scored.count() == 10
    if screenshot_dir:
        reviewing.goto(url)
        reviewing.locator("#calibration").scroll_into_view_if_needed()
        reviewing.screenshot(path=str(screenshot_dir / "scorecard-calibration.png"))
    reviewing.context.close()
