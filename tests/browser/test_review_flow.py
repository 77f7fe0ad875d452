"""A reviewer's day in Chromium, on a real run (a real worker, the offline analyzer): the operator
re-aggregates with another chain into v2; the reviewer accepts and dismisses findings, then
approves the report from the inbox, which empties live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from runs.actions import launch_run
from runs.models import Approval, Finding, Run
from tests.browser.conftest import Daphne
from tests.engine.helpers import wait_for_run

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(240)]

SAMPLE = (settings.BASE_DIR / "samples" / "vulnerable_app").resolve()


def test_reaggregate_review_findings_and_approve_from_the_inbox(
    page: Page,
    browser: Browser,
    daphne: Daphne,
    celery_worker: Callable[..., Any],
    operator: User,
    reviewer: User,
    sign_in: Callable[[Page, User], None],
) -> None:
    celery_worker(concurrency=4, name="review")
    run = launch_run(user=operator, playbook="codebase-audit", target_path=str(SAMPLE))
    run = wait_for_run(run.pk, timeout=180)
    assert run.status == Run.Status.AWAITING_REVIEW

    # The operator makes v2 with dedup only.
    sign_in(page, operator)
    page.goto(f"{daphne.url}/runs/{run.pk}/reports/1/")
    for box in page.locator("input[name=chain]").all():
        if box.get_attribute("value") == "dedup":
            box.check()
        else:
            box.uncheck()
    page.click("button:has-text('Make a new version')")
    page.wait_for_url(f"**/runs/{run.pk}/reports/2/")
    expect(page.locator(".versions")).to_contain_text("v1")
    expect(page.locator(".versions b")).to_have_text("v2")

    # The reviewer, in their own browser session.
    reviewing = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    sign_in(reviewing, reviewer)
    reviewing.goto(f"{daphne.url}/runs/{run.pk}/findings/")
    first = reviewing.locator("form.review-form").first
    first.locator("input[name=comment]").fill("false positive: test fixture")
    first.locator("button[value=dismissed]").click()
    expect(reviewing.locator(".review-dismissed")).to_have_count(1)
    reviewing.locator("form.review-form").first.locator("button[value=accepted]").click()
    expect(reviewing.locator(".review-accepted")).to_have_count(1)
    assert set(
        Finding.objects.filter(run=run).exclude(review="open").values_list("review", flat=True)
    ) == {"accepted", "dismissed"}

    reviewing.goto(f"{daphne.url}/approvals/")
    gate = Approval.objects.get(run=run, gate="report", decision="pending")
    item = reviewing.locator(f"#approval-{gate.pk}")
    expect(item).to_contain_text("Report v2")
    expect(reviewing.locator("#approvals-count")).to_have_text("1")
    item.locator("button[value=approved]").click()
    expect(reviewing.locator(f"#approval-{gate.pk}")).to_have_count(0)
    expect(reviewing.locator("#inbox-empty")).to_be_visible()
    expect(reviewing.locator("#approvals-count")).to_have_text("")
    assert Run.objects.get(pk=run.pk).status == Run.Status.APPROVED
    reviewing.context.close()
