"""Save screenshots of a run's trace as Arize Phoenix shows it into docs/screenshots/.

    .venv/bin/python scripts/phoenix_screenshots.py [--phoenix http://127.0.0.1:6006]

Phoenix must be running and already hold a run's trace in the project `agent-harness` (see
README, "Traces in Phoenix, Jaeger or Langfuse"). It opens the project's latest trace in headless
Chromium and saves two views: the top of the span tree with the first agent's first `chat` span
selected, and the bottom: the report's synthesis and critic agents, the critic's call selected.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SIZE = {"width": 1400, "height": 900}


def latest_trace(phoenix: str, project: str) -> tuple[str, str]:
    """(project id, trace id) of the project's latest root span, from Phoenix's REST API."""
    project_id = requests.get(f"{phoenix}/v1/projects/{project}", timeout=10).json()["data"]["id"]
    url = f"{phoenix}/v1/projects/{project}/spans"
    answer = requests.get(url, params={"limit": 1000}, timeout=10)
    spans: list[dict[str, Any]] = answer.json()["data"]
    roots = [s for s in spans if s["parent_id"] is None]
    if not roots:
        raise SystemExit(f"No trace in the Phoenix project {project!r} yet.")
    root = max(roots, key=lambda s: s["start_time"])
    return project_id, root["context"]["trace_id"]


def collapse(page: Page, name: str, keep_first: bool) -> None:
    """Fold every span called `name` (nine auditors' calls would not fit one screen)."""
    page.get_by_text(name, exact=True).first.wait_for()
    rows = page.locator(".span-node-wrap").filter(has=page.get_by_text(name, exact=True))
    for i in range(1 if keep_first else 0, rows.count()):
        rows.nth(i).locator(".collapse-toggle-button").click()


def shoot(page: Page, url: str, select: int, out: Path) -> None:
    page.goto(url, wait_until="networkidle")
    collapse(page, "invoke_agent auditor", keep_first=select == 0)
    page.get_by_text("chat gpt-4o-mini", exact=True).nth(select).click()
    page.wait_for_load_state("networkidle")
    # Fold the long user message so the model's answer shows under it.
    page.get_by_role("heading", name="user", exact=True).first.click()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out))
    print(f"saved {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phoenix", default="http://127.0.0.1:6006")
    parser.add_argument("--project", default="agent-harness")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    project_id, trace_id = latest_trace(args.phoenix, args.project)
    url = f"{args.phoenix}/projects/{project_id}/traces/{trace_id}"
    out = Path(args.out)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        # A fresh page each time: Phoenix remembers a folded message and would unfold it.
        for select, name in ((0, "phoenix-trace.png"), (-1, "phoenix-report-agents.png")):
            page = browser.new_context(viewport=SIZE).new_page()  # type: ignore[arg-type]
            shoot(page, url, select, out / name)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
