"""The launch form in a browser: only the chosen playbook's options show, and the estimate
refreshes by itself when the playbook, target or options change."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]

SAMPLE = str((settings.BASE_DIR / "samples" / "vulnerable_app").resolve())
CORPUS = str((settings.BASE_DIR / "samples" / "corpus").resolve())


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
