"""Subtree budgets in Chromium: the run page's tree shows each planner group's spent /
allowance and each agent's, and the reason an agent was stopped by its allowance."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from runs.models import Run, Task
from runs.pages.run.tree import dom_id
from tests.browser.conftest import Daphne
from tests.runs.factories import make_run, make_task

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]


def test_the_tree_shows_spent_and_allowance_per_group_and_agent(
    page: Page, daphne: Daphne, operator: User, sign_in: Callable[[Page, User], None]
) -> None:
    run = make_run(operator, title="Split audit", budget_usd=Decimal("0.02"))
    Run.objects.filter(pk=run.pk).update(
        allowances={
            "web": {"usd": "0.012000", "tokens": None, "weight": 3},
            "docs": {"usd": "0.004000", "tokens": None, "weight": 1},
        }
    )
    done = make_task(
        run,
        group="web",
        scope_label="web/app.py",
        status=Task.Status.SUCCEEDED,
        cost_usd=Decimal("0.0051"),
        allowance_usd=Decimal("0.006"),
    )
    make_task(
        run,
        parent=done,
        group="web",
        scope_label="web/app.py part 1",
        status=Task.Status.SUCCEEDED,
        cost_usd=Decimal("0.0007"),
        allowance_usd=Decimal("0.0009"),
    )
    stopped = make_task(
        run,
        group="docs",
        scope_label="docs/big.md",
        status=Task.Status.SKIPPED,
        cost_usd=Decimal(0),
        allowance_usd=Decimal("0.000100"),
        error="allowance exhausted: the allowance of group docs cannot cover the next call",
    )
    sign_in(page, operator)
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    web = page.locator(f"#row-{dom_id('g:web')}")
    expect(web.locator(".allowance")).to_have_text("$0.0058 / $0.0120")
    expect(page.locator(f"#row-{dom_id('g:docs')} .allowance")).to_have_text("$0.0000 / $0.0040")
    # An agent with children: its subtree's spend against its own allowance.
    expect(page.locator(f"#task-{done.pk} .allowance")).to_have_text("$0.0058 / $0.0060")
    expect(page.locator(f"#task-{stopped.pk} .allowance")).to_have_text("$0.0000 / $0.0001")
    expect(page.locator(f"#task-{stopped.pk} .node-error")).to_contain_text("allowance exhausted")
