"""Adaptive fan-out in a real browser: the decisions appear under their folders in the agent
tree while the run goes on, without a reload (websocket fragments), the growing folder's with
its reason and the clean folders' saying they were sampled, not read in full."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from runs.actions import launch_run
from runs.benchmarks.uneven import write_uneven_target
from tests.browser.conftest import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(240)]


def test_adaptive_decisions_appear_live_under_their_folders(
    page: Page,
    daphne: Daphne,
    celery_worker: Callable[..., Any],
    viewer: User,
    sign_in: Callable[[Page, User], None],
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    layout = write_uneven_target(
        tmp_path / "t", seed=5, folders=4, files=10, flawed=1, stray=0, density=1
    )
    celery_worker(concurrency=4, name="adaptive-browser", pool="threads")
    sign_in(page, viewer)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(tmp_path / "t"),
        max_concurrency=4,
        latency_ms=300,
        options={"chunk_files": 1, "adaptive": True},
    )
    page.goto(f"{daphne.url}{run.get_absolute_url()}")
    expect(page.locator("[data-live-indicator]")).to_have_attribute("data-state", "open")
    dense = layout.dense[0]
    grown = page.locator("[data-adaptive]", has_text=f"more agents in {dense}/: scouts found")
    expect(grown).to_be_visible(timeout=90_000)
    sampled = page.locator("[data-adaptive]", has_text="sampled, not read in full")
    expect(sampled).to_have_count(len(layout.folders) - 1, timeout=90_000)
    # The root says how the agents came to be.
    expect(page.locator(".group-row").first).to_contain_text("scouts first")
