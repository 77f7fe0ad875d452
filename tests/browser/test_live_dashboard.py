"""The live dashboard in a real browser: launch from the form, watch the run unfold without
reloading, survive a server restart, and keep viewers away from the controls."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from runs.actions import launch_run
from runs.models import Run, Task
from tests.browser.conftest import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(240)]

SAMPLE = (settings.BASE_DIR / "samples" / "vulnerable_app").resolve()
FINAL = ["awaiting_review", "approved", "rejected", "failed", "cancelled"]


def page_rows(page: Page) -> dict[int, str]:
    """Agent id → status class of every row on the page."""
    rows = page.eval_on_selector_all(
        "#children-root .node-row[id^='task-']",
        "els => els.map(e => [e.id, (e.className.match(/st-(\\w+)/) || [])[1]])",
    )
    return {int(row_id.removeprefix("task-")): status for row_id, status in rows}


def db_rows(run: Run) -> dict[int, str]:
    return dict(Task.objects.filter(run=run).values_list("id", "status"))


def expect_page_matches_database(page: Page, run_id: int, timeout: float = 30) -> Run:
    """Poll until every agent row, the status header and the counters equal the database."""
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run_id)
        rows, wanted = page_rows(page), db_rows(run)
        header = page.inner_text("#run-header .status")
        findings = page.inner_text("[data-stat=findings]")
        cost = page.inner_text("[data-stat=cost]")
        seq = page.get_attribute("#run-header", "data-seq")
        matches = (
            rows == wanted
            and header == run.get_status_display()
            and findings == str(run.findings_count)
            and cost == f"${run.cost_usd:.4f}"
            and seq == str(run.last_seq)
        )
        if matches:
            return run
        if time.monotonic() > deadline:
            missing = {k: v for k, v in wanted.items() if rows.get(k) != v}
            raise AssertionError(
                f"page != database after {timeout}s: header {header!r} vs {run.status}, "
                f"findings {findings} vs {run.findings_count}, cost {cost} vs {run.cost_usd}, "
                f"seq {seq} vs {run.last_seq}, rows differing: {list(missing.items())[:10]}"
            )
        time.sleep(0.5)


def wait_final(run_id: int, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in FINAL:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish: {Run.objects.get(pk=run_id).status}")


def test_operator_launches_from_the_form_and_watches_it_live(
    page: Page,
    daphne: Daphne,
    celery_worker: Callable[..., Any],
    operator: User,
    sign_in: Callable[[Page, User], None],
    screenshot_dir: Path | None,
) -> None:
    celery_worker(concurrency=4, name="browser")
    sign_in(page, operator)
    page.click("text=New run")
    expect(page.locator("h1")).to_have_text("Launch a run")
    if screenshot_dir:
        page.screenshot(path=str(screenshot_dir / "launch.png"), full_page=True)
    page.check("input[name=playbook][value=codebase-audit]")
    page.select_option("#id_target", label="samples/vulnerable_app/")
    page.fill("#id_title", "Audit of the sample app")
    page.fill("#id_max_concurrency", "3")
    page.fill("#id_latency_ms", "700")  # slow enough to watch the agents work
    page.click("button:has-text('Launch run')")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.evaluate("window.__noReload = true")
    expect(page.locator("[data-live-indicator]")).to_have_attribute("data-state", "open")

    # Nodes appear and turn to done while we watch; cost and findings rise.
    expect(page.locator("#children-root .node-row").first).to_be_visible(timeout=30_000)
    expect(page.locator("#children-root .node-row.st-succeeded").first).to_be_visible(
        timeout=60_000
    )
    expect(page.locator("[data-stat=cost]")).not_to_have_text("$0.0000", timeout=30_000)
    expect(page.locator("[data-stat=findings]")).not_to_have_text("0", timeout=30_000)
    if screenshot_dir:
        page.screenshot(path=str(screenshot_dir / "run-live.png"))

    run = wait_final(run_id)
    assert run.status == Run.Status.AWAITING_REVIEW, run.status_reason
    run = expect_page_matches_database(page, run_id)
    expect(page.locator("#run-report")).to_be_visible()
    expect(page.locator("#run-report .report-body")).not_to_be_empty()
    assert page.evaluate("window.__noReload") is True  # all of it without a reload
    assert page.locator("#event-feed li").count() <= 50
    expect(page.locator("#event-feed li").first).to_have_id(f"event-{run.last_seq}")
    if screenshot_dir:
        time.sleep(1.5)  # let the throttled panels (costs, timeline) take their last push
        page.screenshot(path=str(screenshot_dir / "run.png"))
        page.locator("#run-timeline").scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "run-costs.png"))
        stage_more_runs(operator, run)
        page.goto(f"{daphne.url}/")
        page.screenshot(path=str(screenshot_dir / "runs.png"))


def stage_more_runs(operator: User, first: Run) -> None:
    """For the README's list screenshot: more real runs, in several states."""
    from runs.actions import decide_approval

    reviewer = User.objects.create_user("reviewer-ann")
    decide_approval(first.approvals.get(), reviewer, "approved", "Findings confirmed.")
    docs = launch_run(
        user=operator,
        playbook="document-synthesis",
        title="Incident reviews, 2024",
        target_path=str(SAMPLE.parent / "corpus"),
    )
    review = launch_run(
        user=operator,
        playbook="multi-perspective-review",
        title="Data retention policy",
        target_path=str(SAMPLE.parent / "policy.md"),
    )
    wait_final(docs.pk)
    wait_final(review.pk)
    launch_run(
        user=operator,
        playbook="codebase-audit",
        title="Nightly audit",
        target_path=str(SAMPLE),
        max_concurrency=1,
        latency_ms=3000,
    )
    time.sleep(4)  # caught mid-run


def test_page_recovers_every_missed_update_after_a_server_restart(
    page: Page,
    daphne: Daphne,
    celery_worker: Callable[..., Any],
    viewer: User,
    operator: User,
    sign_in: Callable[[Page, User], None],
) -> None:
    celery_worker(concurrency=2, name="restart")
    run = launch_run(
        user=operator,
        playbook="codebase-audit",
        target_path=str(SAMPLE),
        max_concurrency=2,
        latency_ms=600,
    )
    sign_in(page, viewer)
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    expect(page.locator("[data-live-indicator]")).to_have_attribute("data-state", "open")
    expect(page.locator("#children-root .node-row.st-succeeded").first).to_be_visible(
        timeout=60_000
    )
    seen_before = len(page_rows(page))

    daphne.kill()
    expect(page.locator("[data-live-indicator]")).to_have_attribute(
        "data-state", "reconnecting", timeout=10_000
    )
    time.sleep(4)  # the run moves on while the browser is cut off
    missed_seq = Run.objects.get(pk=run.pk).last_seq
    assert missed_seq > int(page.get_attribute("#run-header", "data-seq") or 0)
    daphne.start()

    expect(page.locator("[data-live-indicator]")).to_have_attribute(
        "data-state", "open", timeout=30_000
    )
    wait_final(run.pk)
    final = expect_page_matches_database(page, run.pk, timeout=45)
    assert len(page_rows(page)) == final.tasks_total >= seen_before
    expect(page.locator("#event-feed li").first).to_have_id(f"event-{final.last_seq}")


def test_viewer_sees_no_controls_and_the_server_refuses_them(
    page: Page,
    daphne: Daphne,
    viewer: User,
    operator: User,
    sign_in: Callable[[Page, User], None],
) -> None:
    run = Run.objects.create(
        playbook="codebase-audit",
        target_label="samples/vulnerable_app",
        snapshot_digest="0" * 64,
        launched_by=operator,
        status=Run.Status.RUNNING,
    )
    sign_in(page, viewer)
    expect(page.locator(f"#run-{run.pk}")).to_be_visible()
    expect(page.locator("text=New run")).to_have_count(0)
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    expect(page.locator("#run-header")).to_be_visible()
    expect(page.locator("button:has-text('Cancel run')")).to_have_count(0)
    token = page.get_attribute("input[name=csrfmiddlewaretoken]", "value")
    for path in (f"/runs/{run.pk}/cancel/", f"/runs/{run.pk}/retry/", "/runs/new/"):
        response = page.request.post(
            f"{daphne.url}{path}",
            form={"csrfmiddlewaretoken": token or ""},
            headers={"Referer": page.url},
            max_redirects=0,
        )
        assert response.status == 403, path
    assert page.request.get(f"{daphne.url}/runs/new/").status == 403
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING


def test_runs_list_takes_live_updates_without_console_errors(
    page: Page,
    daphne: Daphne,
    viewer: User,
    operator: User,
    sign_in: Callable[[Page, User], None],
) -> None:
    # Runs on another page change while this one is open, and a run launched after the first
    # page was rendered arrives: no row swap may miss its target (htmx logs
    # oobErrorNoTarget), and the new run is inserted on the first page.
    from tests.runs.factories import emit, make_run

    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    runs = [make_run(operator, title=f"listed {i}") for i in range(27)]
    sign_in(page, viewer)
    page.goto(f"{daphne.url}/?page=2")
    expect(page.locator(f"#run-{runs[0].pk}")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("data-ws", "open")
    for run in runs[-3:]:  # on the first page, not on this one
        emit(run, "task.succeeded")
    emit(runs[0], "task.succeeded")
    page.wait_for_timeout(2_000)
    page.goto(f"{daphne.url}/")
    expect(page.locator("html")).to_have_attribute("data-ws", "open")
    late = make_run(operator, title="launched while the list is open")
    emit(late, "task.succeeded")
    expect(page.locator(f"#run-{late.pk}")).to_be_visible(timeout=10_000)
    page.goto(f"{daphne.url}{late.get_absolute_url()}")  # navigating away mid-updates
    emit(late, "task.succeeded")
    expect(page.locator("#run-header")).to_be_visible()
    page.wait_for_timeout(1_000)
    assert errors == []
