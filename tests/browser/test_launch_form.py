"""The launch form in a browser: only the chosen playbook's options show, the estimate
refreshes by itself when the playbook, target or options change, and its over-budget warning
fills the budget field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]

# Targets are offered by their name under the allowed root, never by a server path.
SAMPLE = "samples/vulnerable_app/"
CORPUS = "samples/corpus/"


def test_options_follow_the_playbook_and_the_estimate_follows_the_form(
    page: Page, daphne: Daphne, operator: User, sign_in: Callable[[Page, User], None]
) -> None:
    sign_in(page, operator)
    page.goto(f"{daphne.url}/runs/new/")
    k = page.locator("input[name=k]")
    chunk_files = page.locator("input[name=chunk_files]")
    document = page.locator("select[name=document]")
    expect(chunk_files).to_be_visible()  # codebase audit is the first playbook
    expect(k).to_be_hidden()
    expect(document).to_be_hidden()

    page.select_option("select[name=target]", SAMPLE)
    agents = page.locator("#launch-estimate [data-agents]")
    expect(agents).to_have_text("9 agents")
    chunk_files.fill("1")
    chunk_files.dispatch_event("change")
    expect(agents).not_to_have_text("9 agents")

    # Over the budget (the offline analyzer's nominal bill): the estimate says so, and its
    # button fills the budget field with one that covers it; the estimate follows (a POST).
    budget = page.locator("input[name=budget_usd]")
    budget.fill("0.000001")
    budget.dispatch_event("change")
    warning = page.locator("#launch-estimate [data-over-budget]")
    expect(warning).to_contain_text("above the budget of $0.000001")
    page.locator("#launch-estimate [data-fill-budget]").click()
    expect(warning).to_have_count(0)
    expect(budget).not_to_have_value("0.000001")
    expect(page.locator("#launch-estimate")).to_contain_text("Nothing the launch would refuse.")

    page.check("input[name=playbook][value=ensemble]")
    expect(k).to_be_visible()
    expect(chunk_files).to_be_hidden()
    expect(agents).to_have_text("5 agents")

    page.check("input[name=playbook][value=multi-perspective-review]")
    page.select_option("select[name=target]", CORPUS)
    expect(page.locator("#launch-estimate")).to_contain_text("the largest of 6 documents")
    # The document select came back filled with the target's documents, and stays visible.
    expect(document).to_be_visible()
    page.select_option("select[name=document]", "*")
    expect(agents).to_have_text("36 agents")
