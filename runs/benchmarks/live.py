"""Live latency: from an event's commit in a worker to its fragment in a real Chromium page.

A daphne serves the real ASGI app; K Chromium pages (one signed-in staff user) open the run page
of a one-agent run; a writer thread stands in for a busy worker and commits ``tool.called``
events of that agent at R per second, each in its own transaction, noting the wall-clock time of
each commit. In every page a MutationObserver notes when ``#event-{seq}`` is inserted. Latency
is the time from an event's commit until the page shows it or a newer one (one machine, one
clock; under a burst the feed jumps to the newest rows), per event and page: p50, p95, max, and
the share of events the page caught up with at all. The path measured is the product's: the
broadcaster's coalescing, the channel layer on Redis, the consumer's rendering, the websocket
and htmx's swap.

Needs Playwright (a dev dependency) and Chromium (``HARNESS_CHROMIUM``, default
/usr/bin/chromium). The run, its user and its session are deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connection, transaction

from harness_site.devstack import start_web, stop_process, web_answers
from runs.actions import launch_run
from runs.actions.claims import claim_task
from runs.actions.planning import plan_run
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Run, Task

CHROMIUM = os.environ.get("HARNESS_CHROMIUM", "/usr/bin/chromium")
SETTLE_S = 3.0  # after the last commit, how long late fragments may still arrive

# Records when each event's row is inserted into the page, by seq (Date.now(): the wall clock
# the writer's time.time() also reads).
OBSERVER = """
window.__arrivals = {};
function note(el, now) {
  if (el.id && el.id.indexOf("event-") === 0 && el.id !== "event-feed") {
    var seq = el.id.slice(6);
    if (!(seq in window.__arrivals)) window.__arrivals[seq] = now;
  }
}
new MutationObserver(function (records) {
  var now = Date.now();
  records.forEach(function (r) {
    r.addedNodes.forEach(function (n) {
      if (n.nodeType !== 1) return;
      note(n, now);
      n.querySelectorAll("[id^='event-']").forEach(function (c) { note(c, now); });
    });
  });
}).observe(document, {childList: true, subtree: true});
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_with_one_agent(target: Path) -> tuple[Run, Task]:
    run = launch_run(user=None, playbook="ensemble", target_path=str(target), options={"k": 1})
    plan_run(run.pk)  # here, not by a worker: the bench needs no worker
    Run.objects.filter(pk=run.pk).update(title="live-latency benchmark")
    task = Task.objects.get(run=run)
    # Running as a worker would leave it (its events then stream to the pages under test).
    task.move(Task.Move.QUEUE)
    claim_task(task)
    return Run.objects.get(pk=run.pk), task


def _session_for(user: User) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def _write(run: Run, task: Task, rate: float, count: int, commits: dict[int, float]) -> None:
    """Commit ``count`` events at ``rate`` per second, each in its own transaction."""
    started = time.perf_counter()
    for i in range(count):
        due = started + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        with transaction.atomic():
            event = record_event(
                run,
                EventType.TOOL_CALLED,
                {"step": i, "tool": "read_file", "reason": ""},
                task=task,
            )
        commits[event.seq] = time.time() * 1000
    connection.close()  # this thread's own connection


def _caught_up(commits: dict[int, float], seen: dict[int, float]) -> list[float]:
    """Per committed event, how long until the page showed it or a newer one. The feed keeps the
    newest rows only: under a burst the page skips straight to the latest, and an event it never
    drew individually was still on screen as soon as a newer one was."""
    latencies = []
    first_at_or_after = float("inf")
    arrivals = sorted(seen.items(), reverse=True)
    index = 0
    for seq in sorted(commits, reverse=True):
        while index < len(arrivals) and arrivals[index][0] >= seq:
            first_at_or_after = min(first_at_or_after, arrivals[index][1])
            index += 1
        if first_at_or_after != float("inf"):
            latencies.append(first_at_or_after - commits[seq])
    return latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def live_latency(rate: float, pages: int, seconds: float, target: Path) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright  # a dev dependency
    except ImportError:
        return {"skipped": "playwright is not installed (pip install -r requirements-dev.lock)"}
    if not Path(CHROMIUM).exists():
        return {"skipped": f"no Chromium at {CHROMIUM} (set HARNESS_CHROMIUM)"}
    # A fresh data directory has no tables yet (launch_run, behind ``fanout``, migrates too).
    call_command("migrate", verbosity=0, interactive=False)
    port = _free_port()
    web = start_web(port)
    user: User | None = None
    run: Run | None = None
    cookie = ""
    commits: dict[int, float] = {}
    try:
        user = User.objects.create_superuser(f"bench-live-{secrets.token_hex(4)}", password=None)
        run, task = _run_with_one_agent(target)
        cookie = _session_for(user)  # the ORM cannot run inside Playwright's event loop below
        deadline = time.monotonic() + 60
        while not web_answers(port):
            if time.monotonic() > deadline or web.poll() is not None:
                return {"skipped": "daphne did not start (see var/logs/web.log)"}
            time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            context = browser.new_context()
            context.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": cookie,
                        "url": f"http://127.0.0.1:{port}",
                    }
                ]
            )
            context.add_init_script(OBSERVER)
            opened = []
            for _ in range(pages):
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}{run.get_absolute_url()}")
                page.wait_for_selector("[data-live-indicator][data-state=open]", timeout=30_000)
                opened.append(page)
            # The writer is a plain thread: the ORM refuses to run beside Playwright's loop.
            count = max(1, int(rate * seconds))
            writer = threading.Thread(target=_write, args=(run, task, rate, count, commits))
            writer.start()
            writer.join()
            time.sleep(SETTLE_S)
            arrivals = [page.evaluate("window.__arrivals") for page in opened]
            browser.close()
    finally:
        # Whatever failed, nothing is left running or behind: daphne, the run, the user.
        stop_process(web)
        if run is not None:
            run.delete()
        if cookie:
            SessionStore(session_key=cookie).delete()
        if user is not None:
            user.delete()
    latencies: list[float] = []
    for seen in arrivals:
        latencies += _caught_up(commits, {int(seq): float(at) for seq, at in seen.items()})
    expected = len(commits) * pages
    if not latencies:
        return {"events": len(commits), "pages": pages, "arrived": 0}
    return {
        "events": len(commits),
        "arrived_fraction": round(len(latencies) / expected, 4),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(_percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
    }
