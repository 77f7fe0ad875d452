"""Benchmark: the run page in Chromium at 1,000 and 10,000 agents, first load and while live.

    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python scripts/bench_run_page_browser.py \
        [--agents 1000 10000] [--events-per-second 50] [--seconds 20]

Builds each run (a folder-by-folder audit, a third of it under way) in a throwaway data
directory, serves it with a real daphne, opens the page in Chromium and reports, from the
browser's Navigation Timing: time to first byte (server time plus the loopback), DOM ready, load,
HTML bytes and DOM elements. Then records events at the given rate for the given time (agents
finishing, from this process, as workers would) and reports how late the page's frames were
(the longest gap between animation frames and the long tasks the browser saw) and how many
updates arrived. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = """() => {
  window.__gaps = []; window.__long = [];
  let last = performance.now();
  const tick = (t) => { window.__gaps.push(t - last); last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new PerformanceObserver((l) => l.getEntries().forEach(e => window.__long.push(e.duration)))
    .observe({type: 'longtask', buffered: true});
  window.__swaps = 0;
  document.addEventListener('htmx:wsAfterMessage', () => { window.__swaps += 1; });
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(agents: int) -> tuple[int, str]:
    """A run of ``agents`` planned agents; returns its id and the user's name."""
    from decimal import Decimal

    from django.contrib.auth.models import User

    from runs.models import Run, Task
    from runs.roles import ensure_roles
    from tests.runs.factories import make_run, task_fields

    user, _ = User.objects.get_or_create(username="bench")
    user.set_password("bench-password")
    user.save()
    user.groups.add(ensure_roles()["operator"])
    run = make_run(user, max_concurrency=64, title=f"{agents} agents")
    lenses = ("security", "reliability", "maintainability")
    mix = ["succeeded", "succeeded", "succeeded", "running", "pending", "pending"]
    Task.objects.bulk_create(
        [
            Task(
                **task_fields(
                    run,
                    group=f"src/pkg{i % 25}/mod{i % 9}",
                    scope_label=f"src/pkg{i % 25}/mod{i % 9}/file_{i}.py",
                    lens=lens,
                    status=mix[i % len(mix)],
                    cost_usd=Decimal("0.0021"),
                )
            )
            for i in range(agents // len(lenses))
            for lens in lenses
        ],
        batch_size=2000,
    )
    Run.objects.filter(pk=run.pk).update(tasks_total=Task.objects.filter(run=run).count())
    return run.pk, user.username


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--events-per-second", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    os.environ["HARNESS_DATA_DIR"] = str(data)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from playwright.sync_api import sync_playwright

    from runs.models import Run, Task
    from tests.runs.factories import emit

    call_command("migrate", verbosity=0)
    runs = {n: build(n) for n in args.agents}
    port = free_port()
    daphne = subprocess.Popen(  # noqa: S603 - our own interpreter serving our own app
        [sys.executable, "-m", "daphne", "-p", str(port), "harness_site.asgi:application"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    # This process records events while Playwright's event loop runs in its thread (daphne,
    # started above, does not get the variable).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/accounts/login/", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{base}/accounts/login/")
            page.fill("input[name=username]", "bench")
            page.fill("input[name=password]", "bench-password")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            for n, (run_id, _) in runs.items():
                loads = []
                for _ in range(3):
                    page.goto(f"{base}/runs/{run_id}/", wait_until="load")
                    loads.append(
                        page.evaluate(
                            """() => { const n = performance.getEntriesByType('navigation')[0];
                            return {ttfb: n.responseStart - n.requestStart,
                                    dom: n.domContentLoadedEventEnd - n.startTime,
                                    load: n.loadEventEnd - n.startTime,
                                    bytes: n.decodedBodySize,
                                    elements: document.getElementsByTagName('*').length}; }"""
                        )
                    )
                best = min(loads, key=lambda r: r["load"])
                print(
                    f"{n} agents, first load (best of 3): TTFB {best['ttfb']:.0f} ms, "
                    f"DOM ready {best['dom']:.0f} ms, load {best['load']:.0f} ms, "
                    f"{best['bytes'] / 1024:.0f} KiB HTML, {best['elements']} elements"
                )
                page.wait_for_selector("html[data-ws=open]")
                page.evaluate(PROBE)
                run = Run.objects.get(pk=run_id)
                waiting = list(
                    Task.objects.filter(run=run, status__in=["pending", "running"]).order_by("?")
                )
                total = int(args.events_per_second * args.seconds)
                started = time.monotonic()
                for i, task in enumerate(waiting[:total]):
                    Task.objects.filter(pk=task.pk).update(status="succeeded")
                    emit(run, "task.succeeded", task)
                    delay = started + (i + 1) / args.events_per_second - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                time.sleep(2)
                live = page.evaluate(
                    "() => ({gaps: window.__gaps, long: window.__long, swaps: window.__swaps})"
                )
                gaps = sorted(live["gaps"])
                p95 = gaps[int(len(gaps) * 0.95)] if gaps else 0
                print(
                    f"{n} agents, live at {args.events_per_second:g} events/s for "
                    f"{args.seconds:g} s: {live['swaps']} updates applied, frame gap p95 "
                    f"{p95:.0f} ms, max {max(gaps, default=0):.0f} ms; "
                    f"{len(live['long'])} long tasks, longest "
                    f"{max(live['long'], default=0):.0f} ms"
                )
            browser.close()
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)
    print(json.dumps({"data_dir": str(data)}))


if __name__ == "__main__":
    main()
