"""Save screenshots of runs' traces as Arize Phoenix shows them into docs/screenshots/.

    .venv/bin/python scripts/phoenix_screenshots.py --run N [--phoenix http://127.0.0.1:6006]

Phoenix must be running and hold the runs' traces in the project `agent-harness` (see
docs/phoenix.md). Two views, in headless Chromium: the project's trace list
(`phoenix-traces.png`: one trace per run, named with its number, with its input, output, tokens
and cost), and run N's trace with its root selected (`phoenix-trace.png`: the span tree, the
kinds, the run's input and output).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SIZE = {"width": 1600, "height": 900}
WAIT_MS = 180_000  # Phoenix renders a 140-span trace slowly on a busy machine


def trace_of(phoenix: str, project: str, run: int) -> tuple[str, str, str]:
    """(project id, trace id, root name) of run ``run``'s first trace, from Phoenix's REST API."""
    project_id = requests.get(f"{phoenix}/v1/projects/{project}", timeout=10).json()["data"]["id"]
    url = f"{phoenix}/v1/projects/{project}/spans"
    spans: list[dict[str, Any]] = requests.get(url, params={"limit": 1000}, timeout=10).json()[
        "data"
    ]
    for span in spans:
        name = span["name"]
        if (
            span["parent_id"] is None
            and name.startswith("invoke_workflow ")
            and name.endswith(f" #{run}")
        ):
            return project_id, span["context"]["trace_id"], name
    raise SystemExit(f"No trace of run {run} in the Phoenix project {project!r}.")


def shoot_list(page: Page, url: str, out: Path) -> None:
    page.goto(url, wait_until="networkidle")
    page.get_by_text("invoke_workflow", exact=False).first.wait_for()
    page.wait_for_timeout(1500)
    # Widen the name column so the run's number shows (Phoenix cuts names at 180 px).
    box = page.locator("th").filter(has_text="name").first.bounding_box()
    if box:
        x, y = box["x"] + box["width"] - 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 140, y, steps=8)
        page.mouse.up()
        page.wait_for_timeout(1000)
    page.screenshot(path=str(out))
    print(f"saved {out}")


def shoot_trace(page: Page, url: str, root: str, out: Path) -> None:
    page.goto(url, wait_until="networkidle")
    page.get_by_text(root, exact=True).first.wait_for()
    page.get_by_text(root, exact=True).first.click()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out))
    print(f"saved {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=int, required=True, help="the run whose trace is shown")
    parser.add_argument("--phoenix", default="http://127.0.0.1:6006")
    parser.add_argument("--project", default="agent-harness")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    project_id, trace_id, root = trace_of(args.phoenix, args.project, args.run)
    out = Path(args.out)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_context(viewport=SIZE).new_page()  # type: ignore[arg-type]
        page.set_default_timeout(WAIT_MS)
        traces = f"{args.phoenix}/projects/{project_id}/traces"
        shoot_list(page, traces, out / "phoenix-traces.png")
        page = browser.new_context(viewport=SIZE).new_page()  # type: ignore[arg-type]
        page.set_default_timeout(WAIT_MS)
        trace_url = f"{args.phoenix}/projects/{project_id}/traces/{trace_id}"
        shoot_trace(page, trace_url, root, out / "phoenix-trace.png")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
