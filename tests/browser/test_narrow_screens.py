"""On a phone (390 px wide) no page scrolls sideways: the header wraps, wide tables scroll in
their own box; and a refused page keeps the site's navigation."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from runs.models import Task
from tests.browser.conftest import Daphne
from tests.runs.factories import emit, make_finding, make_run, make_tree

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]


def test_no_page_scrolls_sideways_at_390_px(
    page: Page, daphne: Daphne, operator: User, sign_in: Callable[[Page, User], None]
) -> None:
    run = make_run(operator, title="a-rather-long-run-title-without-any-spaces-to-break-it-at")
    tasks = make_tree(run, roots=3, children=2, grandchildren=1)
    Task.objects.filter(pk=tasks[0].pk).update(
        status="succeeded", cost_usd=Decimal("0.0123"), tokens_in=1200, model="gpt-4o-mini"
    )
    for task in tasks[:3]:
        make_finding(run, task, path="a/very/deeply/nested/package/with/a/long/module_name.py")
        emit(run, "tool.called", task=task, step=0, tool="read_file", reason="")
    # Staff: the longest navigation (Webhooks and Admin too), which once overflowed at 390 px.
    operator.is_staff = True
    operator.save(update_fields=["is_staff"])
    sign_in(page, operator)
    page.set_viewport_size({"width": 390, "height": 844})
    paths = [
        "/",
        "/runs/new/",
        run.get_absolute_url(),
        f"{run.get_absolute_url()}events/",
        f"{run.get_absolute_url()}findings/",
    ]
    for path in paths:
        page.goto(f"{daphne.url}{path}")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide at 390 px"
        expect(page.locator(".topbar .mainnav")).to_be_visible()
        expect(page.locator("button:has-text('Sign out')")).to_be_in_viewport()


def test_a_refused_page_keeps_the_navigation(
    page: Page, daphne: Daphne, viewer: User, sign_in: Callable[[Page, User], None]
) -> None:
    sign_in(page, viewer)
    response = page.goto(f"{daphne.url}/runs/new/")
    assert response is not None and response.status == 403
    expect(page.locator(".topbar .mainnav a:has-text('Runs')")).to_be_visible()
    expect(page.locator("text=You need the launch run permission")).to_be_visible()
    expect(page.locator("a:has-text('Back to the runs')")).to_be_visible()
