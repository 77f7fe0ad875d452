"""A 2,000-agent run in Chromium: the page loads its first view only, a group opens (its agents
fetched then) and closes, search reveals an agent deep in the tree, and live events reach the
counters of a group that was never opened."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import ConsoleMessage, Page, expect

from runs.models import Run, Task
from runs.pages.run.tree import dom_id
from tests.browser.conftest import Daphne
from tests.runs.factories import emit, make_audit, make_run, make_task

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(180)]

FOLDERS = [f"pkg{i}/mod" for i in range(40)]


@pytest.fixture
def big_run(operator: User) -> tuple[Run, list[Task]]:
    run = make_run(operator, title="Audit of a 2,000-agent monorepo", max_concurrency=128)
    tasks = make_audit(run, FOLDERS, files=25)  # 40 folders x 25 files x 2 lenses
    # Half the folders under way (pkg7, watched live below, stays untouched).
    mix = [Task.Status.SUCCEEDED] * 6 + [Task.Status.RUNNING, Task.Status.FAILED]
    for i, task in enumerate(tasks[:1000]):
        if task.group != "pkg7/mod" and i % 10 < len(mix):
            Task.objects.filter(pk=task.pk).update(
                status=mix[i % 10], cost_usd=Decimal("0.0021"), tokens_in=1200, tokens_out=300
            )
    statuses = list(Task.objects.filter(run=run).values_list("status", flat=True))
    Run.objects.filter(pk=run.pk).update(
        tasks_done=statuses.count(Task.Status.SUCCEEDED),
        tasks_failed=statuses.count(Task.Status.FAILED),
    )
    run.refresh_from_db()
    return run, tasks


def _errors(page: Page) -> list[str]:
    errors: list[str] = []

    def keep(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    page.on("console", keep)
    return errors


def test_a_group_opens_on_demand_and_closes(
    page: Page,
    daphne: Daphne,
    operator: User,
    big_run: tuple[Run, list[Task]],
    sign_in: Callable[[Page, User], None],
    screenshot_dir: Path | None,
) -> None:
    run, tasks = big_run
    errors = _errors(page)
    sign_in(page, operator)
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    expect(page.locator("#row-root")).to_contain_text("2000 agents")
    assert page.locator(".node-row").count() <= 61  # the first view, not 2,000 rows
    group = dom_id("g:pkg12/mod")
    first = next(t for t in tasks if t.group == "pkg12/mod")
    expect(page.locator(f"#task-{first.pk}")).to_have_count(0)
    page.locator(f"#row-{group}").click()
    expect(page.locator(f"#task-{first.pk}")).to_be_visible()
    expect(page.locator(f"#kids-{group} > li.node")).to_have_count(50)
    if screenshot_dir:
        page.locator(f"#row-{dom_id('g:pkg10/mod')}").scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "run-big.png"))
    page.locator(f"#row-{group}").click()
    expect(page.locator(f"#task-{first.pk}")).to_be_hidden()
    page.locator(f"#row-{group}").click()  # reopened from what was loaded: no second fetch
    expect(page.locator(f"#kids-{group} > li.node")).to_have_count(50)
    assert errors == []


def test_search_reveals_an_agent_deep_in_the_tree(
    page: Page,
    daphne: Daphne,
    operator: User,
    big_run: tuple[Run, list[Task]],
    sign_in: Callable[[Page, User], None],
) -> None:
    run, tasks = big_run
    deep = tasks[1_733]
    needle = make_task(run, parent=deep, group=deep.group, scope_label="needle.py#L10-90")
    sign_in(page, operator)
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    expect(page.locator(f"#task-{needle.pk}")).to_have_count(0)
    page.fill("input[name=q]", "needle")
    hit = page.locator("#tree-search .search-hits a")
    expect(hit).to_have_count(1)
    hit.click()
    row = page.locator(f"#task-{needle.pk}")
    expect(row).to_be_visible()
    expect(row).to_be_in_viewport()
    expect(page.locator(f"#node-{needle.pk}")).to_have_class("node revealed")
    expect(page.locator(f"#task-{deep.pk}")).to_be_visible()  # its parent, opened on the way


def test_live_events_reach_a_collapsed_groups_counters(
    page: Page,
    daphne: Daphne,
    operator: User,
    big_run: tuple[Run, list[Task]],
    sign_in: Callable[[Page, User], None],
) -> None:
    run, tasks = big_run
    errors = _errors(page)
    sign_in(page, operator)
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    expect(page.locator("html[data-ws=open]")).to_have_count(1)
    group = page.locator(f"#row-{dom_id('g:pkg7/mod')}")
    expect(group).to_contain_text("50 agents · 0 done")
    in_group = [t for t in tasks if t.group == "pkg7/mod"][:3]
    for task in in_group:
        Task.objects.filter(pk=task.pk).update(
            status=Task.Status.SUCCEEDED, cost_usd=Decimal("0.5")
        )
        emit(run, "task.succeeded", task)
    expect(group).to_contain_text("50 agents · 3 done")
    expect(group).to_contain_text("$1.5000")
    expect(page.locator("#row-root")).to_contain_text("3 done")
    assert page.locator(f"#task-{in_group[0].pk}").count() == 0  # the group stays closed
    assert errors == []
