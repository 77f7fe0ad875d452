"""Versions compared, and a finding dismissed with its agent re-run, in Chromium on a real run
(a real worker, the offline analyzer). The operator makes v2 with dedup only; a reviewer who is
also an operator dismisses a finding and re-runs its agent after seeing the estimate, the run
reports v3 without it, and the reviewer compares the versions side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from agents.aggregation.compare import compare
from runs.actions import launch_run
from runs.actions.report import reaggregate
from runs.models import Event, Finding, Report, Run, Task
from runs.roles import ensure_roles
from tests.browser.conftest import Daphne
from tests.engine.helpers import wait_for_run

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]

SAMPLE = (settings.BASE_DIR / "samples" / "vulnerable_app").resolve()


def _alone_in_a_kept_item(report: Report) -> Finding:
    """A finding that is the only one behind a kept item of ``report``: dismissing it takes the
    item out of the next version."""
    for cluster in report.clusters:
        if cluster["kept"] and len(cluster["finding_ids"]) == 1:
            return Finding.objects.get(pk=cluster["finding_ids"][0])
    raise AssertionError("no kept item with a single finding")


def test_dismiss_rerun_and_compare_versions_side_by_side(
    page: Page,
    daphne: Daphne,
    celery_worker: Callable[..., Any],
    operator: User,
    make_user: Callable[..., User],
    sign_in: Callable[[Page, User], None],
    screenshot_dir: Path | None,
) -> None:
    celery_worker(concurrency=4, name="compare")
    run = launch_run(user=operator, playbook="codebase-audit", target_path=str(SAMPLE))
    run = wait_for_run(run.pk, timeout=180)
    assert run.status == Run.Status.AWAITING_REVIEW
    v1 = run.reports.get(version=1)
    # v2: the same chain with a stricter confidence floor, the median of v1's items: the less
    # certain half drops out and the items below them move up.
    confidences = sorted(c["confidence"] for c in v1.clusters if c["kept"])
    floor = confidences[len(confidences) // 2]
    reaggregate(run, operator, chain=v1.chain, options={"min_confidence": floor})
    target = _alone_in_a_kept_item(v1)
    behind = target.task
    others = {t.pk: t.finished_at for t in Task.objects.filter(run=run).exclude(pk=behind.pk)}

    person = make_user("reviewer", username="ada")
    person.groups.add(ensure_roles()["operator"])
    page.set_viewport_size({"width": 1440, "height": 1000})
    sign_in(page, person)
    page.goto(f"{daphne.url}/runs/{run.pk}/findings/?page=1")
    row = page.locator("tr", has=page.locator(f"#rerun-{target.pk}"))
    row.locator("input[name=comment]").fill("a test fixture, not shipped code")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {r.url}"))
    row.locator("button.rerun-open").click()
    confirm = page.locator(f"#rerun-{target.pk}.rerun-confirm")
    expect(confirm).to_contain_text(f"#{behind.pk}")
    expect(confirm).to_contain_text("Estimated cost")
    expect(confirm.locator(f"a[href$='/agents/{behind.pk}/']")).to_have_count(1)
    expect(confirm.locator("input[name=comment]")).to_have_value("a test fixture, not shipped code")
    if screenshot_dir:
        confirm.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "gates-rerun-confirm.png"))
    confirm.locator("button:has-text('Dismiss and re-run')").click()
    page.wait_for_url(f"**/runs/{run.pk}/")
    expect(page.locator(".messages")).to_contain_text(f"re-running agent #{behind.pk}")
    # The estimate was asked for by a POST: no URL carried the CSRF token.
    assert f"POST {daphne.url}/runs/{run.pk}/findings/{target.pk}/rerun/estimate/" in sent
    assert sent and not [s for s in sent if "csrfmiddlewaretoken" in s]

    run = wait_for_run(run.pk, timeout=120)
    assert run.status == Run.Status.AWAITING_REVIEW
    assert run.reports.order_by("-version").first().version == 3  # type: ignore[union-attr]
    resumed = Event.objects.filter(run=run, type="run.resumed").get().payload
    assert resumed["agents"] == [behind.pk] and resumed["finding"] == target.pk
    assert {t.pk: t.finished_at for t in Task.objects.filter(run=run).exclude(pk=behind.pk)} == (
        others
    )

    # v1 against v2 (the stricter floor): what was dropped.
    v2, v3 = run.reports.get(version=2), run.reports.get(version=3)
    expected = compare(v1.clusters, v2.clusters, (1, 2))
    assert expected.dropped
    page.goto(f"{daphne.url}/runs/{run.pk}/reports/2/")
    page.select_option("select[name=compare]", "1")
    page.click("button:has-text('Compare')")
    box = page.locator("#comparison")
    expect(box.locator("h2")).to_contain_text("v1 → v2")
    # The versions list says what made v2 differ, and who asked.
    expect(page.locator(".versions li", has_text="v2")).to_contain_text(f"min_confidence {floor}")
    expect(box.locator(".side-older .mark-dropped")).to_have_count(len(expected.dropped))
    expect(box.locator(".side-older li")).to_have_count(len(expected.older_items))
    expect(box.locator(".change-dropped .why").first).to_contain_text(f"< {floor:.2f}")
    # v2 against v3 (back to v1's floor, without the dismissed finding): what came back.
    page.select_option("select[name=compare]", "3")
    page.click("button:has-text('Compare')")
    expect(box.locator("h2")).to_contain_text("v2 → v3")
    added = compare(v2.clusters, v3.clusters, (2, 3)).added
    assert added
    expect(box.locator(".side-newer .mark-added")).to_have_count(len(added))

    # v3 (after the dismissal) against v1: the dismissed finding's item is dropped, and says why.
    page.goto(f"{daphne.url}/runs/{run.pk}/reports/3/?compare=1")
    box = page.locator("#comparison")
    expect(box.locator("h2")).to_contain_text("v1 → v3")
    (item,) = [c for c in v1.clusters if target.pk in c["finding_ids"]]
    dropped = box.locator(".change-dropped", has_text=f"was #{item['rank']} ")
    expect(dropped).to_contain_text(target.title)
    expect(dropped).to_contain_text("dismissed by a reviewer")
    older = box.locator(f".side-older a[href$='#cluster-{item['key']}']")
    expect(older.locator("xpath=..")).to_have_class("side-item mark-dropped")
    if screenshot_dir:
        box.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "gates-compare.png"), full_page=False)
    # Re-ranked: no tunable reorders the offline analyzer's findings on this sample (each item
    # has one finding, so votes never change), so v4 is stored as a model-ranked chain could
    # leave it: v3's two first items swapped.
    swapped = [dict(c) for c in v3.clusters]
    first, second = sorted((c for c in swapped if c["kept"]), key=lambda c: c["rank"])[:2]
    first["rank"], second["rank"] = 2, 1
    Report.objects.create(run=run, version=4, chain=v3.chain, clusters=swapped)
    page.goto(f"{daphne.url}/runs/{run.pk}/reports/4/?compare=3")
    box = page.locator("#comparison")
    expect(box.locator("h2")).to_contain_text("v3 → v4")
    expect(box.locator(".side-newer .mark-reranked")).to_have_count(2)
    expect(box.locator(".change-reranked")).to_have_count(2)
    expect(box.locator(".change-reranked", has_text=first["title"])).to_contain_text("#1 → #2")
    expect(box.locator(".side-newer li").first).to_contain_text(second["title"])

    page.goto(f"{daphne.url}/runs/{run.pk}/reports/3/?compare=1")
    box = page.locator("#comparison")
    # Clicking an item opens it in its version's provenance.
    older.click()
    page.wait_for_url(f"**/runs/{run.pk}/reports/1/#cluster-{item['key']}")
    expect(page.locator(f"#cluster-{item['key']}")).to_contain_text(target.title)
