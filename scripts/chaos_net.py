"""Fault-suite scenarios across a network link (scripts/chaos_scenarios.py runs them): the database
connection cut, a model provider answering with a fault mix, ten runs sharing one provider cap,
and a live page whose websocket drops while the run goes on.

The provider scenarios use the local OpenAI-compatible server the tests use (tests/fakes), in a
thread of the scenario process; the workers reach it over HTTP with the real openai SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from chaos_stack import DATA_DIR, Stack, launch, succeeded, wait_finished, wait_for
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from harness_site import devstack
from harness_site.testing.tcpproxy import CuttableProxy
from runs.models import Run, Task
from tests.fakes import FAULT_MIX
from tests.fakes.openai_server import FakeOpenAIServer

OPENAI_KEY = "sk-chaos-fake-0123456789abcdef"
MODEL = "gpt-4o-mini"
CUT_S = 5.0


def db_drop(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """The workers reach PostgreSQL through a proxy that is cut for 5 s mid-run: every open
    connection reset, every new one refused, then the link comes back."""
    if connection.vendor != "postgresql":
        raise RuntimeError("db-drop needs PostgreSQL (set DATABASE_URL)")
    parts = urlsplit(os.environ["DATABASE_URL"])
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    netloc = parts.netloc.rsplit("@", 1)
    via = f"{netloc[0]}@127.0.0.1:{proxy.port}" if len(netloc) == 2 else f"127.0.0.1:{proxy.port}"
    env = {"DATABASE_URL": urlunsplit((parts.scheme, via, parts.path, "", ""))}
    try:
        stack.start_worker(extra_env=env)
        run = launch(20, "db-drop")
        wait_for(lambda: succeeded([run]) >= 12, 60, "12 agents done")
        proxy.cut()
        stack.fault(f"database link cut for {CUT_S:.0f} s at {succeeded([run])} done")
        time.sleep(CUT_S)
        proxy.restore()
        stack.notes.append(
            f"{proxy.dropped} open connections reset, {proxy.refused} refused while cut"
        )
        return [run], wait_finished(stack, [run], bound)
    finally:
        proxy.stop()


def _provider_env(server: FakeOpenAIServer, providers: dict[str, Any] | None) -> dict[str, str]:
    """Point the built-in ``openai`` provider at the fake server, here and in the workers."""
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": OPENAI_KEY}
    if providers:
        path = DATA_DIR / "providers.json"
        path.write_text(json.dumps({"providers": providers}))
        env["HARNESS_PROVIDERS_FILE"] = str(path)
        settings.HARNESS_PROVIDERS_FILE = str(path)  # this process read settings already
    os.environ.update(env)
    return env


def provider_fault_mix(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """Two runs on the openai provider while the server answers 30% 429 (Retry-After 1 s), 10%
    5xx, 5% a body that is not JSON and 5% hangs past the call timeout (seeded: the same
    sequence of faults every time)."""
    server = FakeOpenAIServer(api_key=OPENAI_KEY, retry_after="1")
    with server:
        server.use_fault_mix(FAULT_MIX, seed=14)
        server.hang_seconds = float(os.environ.get("HARNESS_CALL_TIMEOUT_S", "5")) + 3
        env = _provider_env(server, None)
        stack.start_worker(extra_env=env)
        ids = [launch(4, f"mix-{i}", provider="openai", model=MODEL) for i in range(2)]
        stack.fault("fault mix on from the first request")
        recovery = wait_finished(stack, ids, bound)
        drawn = server.behaviours
        faults = {name: drawn.count(name) for name in FAULT_MIX}
        stack.faults = sum(faults.values())
        stack.notes.append(f"{len(drawn)} model requests, faults by kind {faults}")
        retried = Task.objects.filter(run_id__in=ids, attempts__gt=1).count()
        stack.notes.append(f"{retried} agents needed more than one attempt")
        return ids, recovery


# The most a request may arrive after its rate permit (a client is built per call; two busy
# cores): the permit is what the limiter counts, the arrival is what the server sees.
PERMIT_TO_ARRIVAL_S = 2.0


def rate_excess(arrivals: list[float], rpm: int) -> float:
    """How far the busiest stretch of requests goes over what a GCRA limit of ``rpm`` admits (a
    burst of a minute's capacity, then one every 60/rpm s): between the i-th and j-th arrival at
    most rpm * (t_j - t_i + 60 + PERMIT_TO_ARRIVAL_S) / 60 requests. <= 0 means the cap held."""
    arrivals = sorted(arrivals)
    worst = float("-inf")
    for i, first in enumerate(arrivals):
        for j in range(i, len(arrivals)):
            allowed = rpm * (arrivals[j] - first + 60 + PERMIT_TO_ARRIVAL_S) / 60
            worst = max(worst, j - i + 1 - allowed)
    return worst


def provider_cap_10_runs(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """Ten runs at once on one provider capped at 4 concurrent calls and 90 requests a minute,
    across two workers; the server measures how many requests it held at once."""
    cap, rpm = 4, 90
    server = FakeOpenAIServer(api_key=OPENAI_KEY)
    with server:
        server.latency_seconds = 0.2
        env = _provider_env(server, {"openai": {"concurrency": cap, "rpm": rpm}})
        stack.start_worker(extra_env=env)
        stack.start_worker(extra_env=env)
        ids = [launch(2, f"cap-{i}", provider="openai", model=MODEL) for i in range(10)]
        stack.fault(f"10 runs launched at once on a cap of {cap} calls and {rpm} rpm")
        recovery = wait_finished(stack, ids, bound)
        chats = [r.at for r in server.requests if r.path == "/v1/chat/completions"]
        span = max(chats) - min(chats) if chats else 0
        excess = rate_excess(chats, rpm)
        stack.notes.append(
            f"{len(chats)} model requests in {span:.1f} s; at most {server.max_in_flight} "
            f"at once (cap {cap}); busiest stretch {excess:+.1f} requests against {rpm} rpm"
        )
        if server.max_in_flight > cap:
            stack.problems.append(f"{server.max_in_flight} requests at once over the cap {cap}")
        if excess > 0:
            stack.problems.append(f"{excess:.1f} requests over {rpm} rpm in one stretch")
        return ids, recovery


def _session_cookie() -> str:
    user = get_user_model().objects.create_superuser("chaos", "chaos@example.invalid", "x")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


_COUNTERS = re.compile(r'id="run-counters"[^>]*data-seq="(\d+)"')
_AGENTS = re.compile(r'Agents</span><span class="stat-value">(\d+)<span class="muted"> / (\d+)')
_LIVE_SEQ = re.compile(r'id="live-seq" data-seq="(\d+)"')


class Page:
    """What a run page would show, from the frames of its websocket."""

    def __init__(self) -> None:
        self.seq = 0
        self.counters_seq = 0
        self.done = self.total = 0
        self.frames = 0

    def read(self, frame: str) -> None:
        self.frames += 1
        if m := _LIVE_SEQ.search(frame):
            self.seq = max(self.seq, int(m.group(1)))
        if m := _COUNTERS.search(frame):
            self.counters_seq = int(m.group(1))
        if m := _AGENTS.search(frame):
            self.done, self.total = int(m.group(1)), int(m.group(2))


async def _watch(url: str, cookie: str, origin: str, page: Page, seconds: float) -> None:
    """Connect as the page does (since= what it has), say hello, read frames for ``seconds``."""
    headers = {"Cookie": cookie}
    async with websockets.connect(
        f"{url}?since={page.seq}",
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
    ) as ws:
        await ws.send(json.dumps({"since": page.seq}))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            page.read(str(frame))


def ws_reconnect(stack: Stack, bound: float) -> tuple[list[int], float | None]:
    """A run page's websocket (real daphne, the real consumer) watches a run; mid-run daphne is
    SIGKILLed and the worker too; a new daphne and worker start, the page reconnects from the
    seq it had, and once the run is over its counters and seq must equal the database's."""
    port = free_port()
    log = open(DATA_DIR / "web.log", "ab")  # noqa: SIM115 - closed in finally
    web = devstack.start_web(port, output=log)
    try:
        wait_for(lambda: devstack.web_answers(port), 60, "daphne")
        worker = stack.start_worker()
        run = launch(20, "ws", latency_ms=1500)  # about 12 s of work: the fault lands mid-run
        url, origin = f"ws://127.0.0.1:{port}/ws/runs/{run}/", f"http://127.0.0.1:{port}"
        cookie = _session_cookie()
        page = Page()
        asyncio.run(_watch(url, cookie, origin, page, 4))
        before = (page.seq, page.done)
        os.killpg(web.pid, signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGKILL)
        web.wait()
        worker.wait()
        stack.fault(f"daphne and the worker SIGKILLed with the page at seq {page.seq}")
        web = devstack.start_web(port, output=log)
        wait_for(lambda: devstack.web_answers(port), 60, "daphne again")
        stack.start_worker()
        recovery = wait_finished(stack, [run], bound)
        asyncio.run(_watch(url, cookie, origin, page, 4))
        db = Run.objects.get(pk=run)
        stack.notes.append(
            f"page before the fault: seq {before[0]}, {before[1]} done; after reconnect: seq "
            f"{page.seq}, counters seq {page.counters_seq}, {page.done}/{page.total} done, "
            f"{page.frames} frames; database: seq {db.last_seq}, {db.tasks_done}/{db.tasks_total}"
        )
        if (page.seq, page.counters_seq, page.done, page.total) != (
            db.last_seq,
            db.last_seq,
            db.tasks_done,
            db.tasks_total,
        ):
            stack.problems.append("the page after reconnect differs from the database")
        return [run], recovery
    finally:
        devstack.stop_process(web, timeout=5)
        log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
