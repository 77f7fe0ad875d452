"""``manage.py bench``: measure the product the way a user runs it, next to its simplest peers.

Scenarios (one JSON object each with ``--json``):

- ``fanout``: ``launch_run`` of the ensemble playbook over a one-file target, N agents of one
  model call each at concurrency C and simulated latency L, through the whole product path
  (Celery worker started by ``launch_run``, Redis, the database). Wall, ideal = ceil(N/C)·L,
  efficiency, max in flight, events per agent, harness CPU per agent (every process of the run:
  this one and the worker it starts, including the worker's start-up, about 1.5 s of CPU, and
  the offline analyzer's own work on one small file; not the Redis server), peak worker memory.
- ``peers``: the same N, C, L as a bare ``asyncio.gather`` under a semaphore (the physical limit
  of one process) and, when installed, LangGraph's ``Send`` fan-out; each with its wall and our
  fan-out wall as a ratio.
- ``live``: an event's commit in a worker → its fragment in a real Chromium page, p50/p95, at
  50 and 500 events/s with 1 and 10 pages open (``runs/benchmarks/live.py``; needs Playwright).
- ``aggregation``: the aggregation chain over 1,000 and 10,000 synthetic findings (in memory).
- ``adaptive``: adaptive fan-out against the full one on generated targets with uneven flaw
  density, one file per chunk: agents, cost and findings of each (``runs/benchmarks/adaptive.py``).
- ``throughput``: the fan-out at latency 0 with 1 and 2 worker processes (``--workers``): agents
  completed per second by one run, which is the harness's own limit.

``--latency-sigma S`` draws each agent's latency from a log-normal distribution with median
``--latency-ms`` (deterministic per agent); the peers then sleep exactly our agents' latencies.

Benchmarks report; nothing here asserts a time. Run it on an idle machine, with no ``make run``
stack consuming this deployment's queue (its worker would take the run instead).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import operator
import os
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psutil
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from agents.aggregation.records import FindingRow
from agents.aggregation.stages import RunFacts, run_chain
from agents.latency import agent_latency_ms
from agents.wording import noun
from harness_site.celery import app
from harness_site.devstack import start_worker, stop_process
from harness_site.localredis import ensure_private_redis, stop_private_redis
from runs.benchmarks import adaptive as adaptive_bench
from runs.benchmarks.live import live_latency
from runs.management.options import add_latency_options
from runs.models import Task

SCENARIOS = ("fanout", "peers", "throughput", "live", "aggregation", "adaptive")
TARGET_SOURCE = "import os\n\n\ndef handler(expr):\n    return eval(expr)\n"


def machine() -> dict[str, Any]:
    redis_host = str(settings.REDIS_URL).rsplit("@", 1)[-1]  # never a password
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "database": connection.vendor,
        "redis": "private" if settings.HARNESS_PRIVATE_REDIS else redis_host,
        "worker_pool": os.environ.get("CELERY_WORKER_POOL", "threads"),
    }


class _PeakMemory:
    """Samples the resident memory of this process's children (the worker) until stopped."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _start_workers(count: int, threads: int) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes of ``threads`` threads each, once all of them answer (0: none;
    launch_run then starts its own)."""
    procs = [
        start_worker(concurrency=threads, name=f"bench{i}-{time.monotonic_ns()}@%h")
        for i in range(count)
    ]
    deadline = time.monotonic() + 90
    while count and len(app.control.ping(timeout=0.5) or []) < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for proc in procs:
                stop_process(proc)
            raise CommandError("the bench's workers did not start; see var/logs/worker.log")
    return procs


def fanout(
    n: int, c: int, latency_ms: int, target: Path, *, sigma: float = 0.0, workers: int = 0
) -> tuple[dict[str, Any], int]:
    """The figures, and the run's id."""
    out = io.StringIO()
    cpu_before = _cpu_seconds()
    with _PeakMemory() as memory:
        procs = _start_workers(workers, c)
        try:
            call_command(
                "launch_run",
                playbook="ensemble",
                target=str(target),
                max_concurrency=c,
                latency_ms=latency_ms,
                latency_sigma=sigma,
                options=[f"k={n}", f"max_agents={n}"],
                budget_usd="1000",
                wait=True,
                json=True,
                stdout=out,
            )
        finally:
            for proc in procs:
                stop_process(proc)
    cpu = _cpu_seconds() - cpu_before
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    wall = float(summary["wall_seconds"])
    # With a latency mix the ideal is the same per-agent latencies under a perfect scheduler,
    # which is what the asyncio peer measures (``peers``); ceil(N/C)·L only for a fixed one.
    ideal = math.ceil(n / c) * latency_ms / 1000 if not sigma else None
    figures = {
        "wall_s": wall,
        "ideal_s": ideal,
        "efficiency": round(ideal / wall, 3) if wall and ideal else None,
        "agents_per_s": round(n / wall, 1) if wall else None,
        "max_in_flight": summary["max_in_flight"],
        "succeeded": summary["agents"]["succeeded"],
        "events_per_agent": round(summary["events"] / n, 2),
        "harness_cpu_ms_per_agent": round(cpu / n * 1000, 2),
        "peak_worker_memory_mb": round(memory.peak / 2**20, 1),
    }
    return figures, int(summary["run_id"])


def run_latencies(run_id: int, latency_ms: int, sigma: float) -> list[float]:
    """Each agent's simulated latency in seconds, as the worker drew it (from its key)."""
    keys = Task.objects.filter(run_id=run_id).values_list("key", flat=True)
    return [agent_latency_ms(latency_ms, sigma, key) / 1000 for key in keys]


async def _gather(c: int, latencies: list[float]) -> float:
    gate = asyncio.Semaphore(c)

    async def agent(latency_s: float) -> None:
        async with gate:
            await asyncio.sleep(latency_s)

    started = time.perf_counter()
    await asyncio.gather(*(agent(s) for s in latencies))
    return time.perf_counter() - started


class _GraphState(TypedDict):
    # LangGraph reads this at run time: it must live at module level, imports and all.
    done: Annotated[list[int], operator.add]


class _GraphItem(TypedDict):
    i: int
    latency_s: float


def _langgraph(c: int, latencies: list[float]) -> float | str:
    try:
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Send
    except ImportError:
        return "not installed (pip install langgraph)"

    def agent(item: _GraphItem) -> dict[str, list[int]]:
        time.sleep(item["latency_s"])
        return {"done": [item["i"]]}

    graph = StateGraph(_GraphState)
    graph.add_node("agent", agent)  # type: ignore[call-overload]  # Send gives it one item, not the state
    graph.add_conditional_edges(
        START,
        lambda _: [Send("agent", {"i": i, "latency_s": s}) for i, s in enumerate(latencies)],
    )
    graph.add_edge("agent", END)
    started = time.perf_counter()
    graph.compile().invoke({"done": []}, config={"max_concurrency": c})
    return time.perf_counter() - started


def peers(
    n: int, c: int, latency_ms: int, ours: float | None, latencies: list[float] | None = None
) -> dict[str, Any]:
    """The same fan-out as a bare asyncio.gather and as LangGraph's Send: ``latencies`` (each
    agent's, as our run drew them) or N times ``latency_ms``."""
    latencies = latencies or [latency_ms / 1000] * n
    result: dict[str, Any] = {"asyncio_gather_s": round(asyncio.run(_gather(c, latencies)), 3)}
    graph = _langgraph(c, latencies)
    result["langgraph_s"] = round(graph, 3) if isinstance(graph, float) else graph
    if ours:
        result["ours_vs_asyncio"] = round(ours / result["asyncio_gather_s"], 2)
        if isinstance(graph, float):
            result["ours_vs_langgraph"] = round(ours / graph, 2)
    return result


def aggregation(findings: int) -> dict[str, Any]:
    rng = random.Random(findings)
    # Many agents reporting overlapping problems: about one distinct problem per five findings.
    rows = [
        FindingRow(
            id=i,
            task_id=i // 3,
            lens="security",
            rule=f"sec.rule{rng.randrange(20)}",
            title=f"Problem {rng.randrange(findings // 5 or 1)}",
            detail="detail",
            severity=rng.choice(["low", "medium", "high"]),
            confidence=rng.random(),
            path=f"pkg/mod{rng.randrange(findings // 10 or 1)}.py",
            line_start=rng.randrange(1, 400),
            line_end=None,
            evidence="eval(x)",
        )
        for i in range(findings)
    ]
    facts = RunFacts(
        run_id=0,
        playbook="ensemble",
        playbook_title="Ensemble",
        target="bench",
        status="aggregating",
        provider="heuristic",
        is_llm=False,
        agents={"total": findings // 3, "succeeded": findings // 3, "failed": 0, "skipped": 0},
        cost_usd="0",
        budget_usd=None,
        unpriced_calls=0,
        tokens={"input": 0, "output": 0},
        skipped_files=[],
        failed_scopes=[],
        skipped_scopes=[],
        options={},
    )
    started = time.perf_counter()
    draft = run_chain(rows, facts, ["dedup", "quorum", "confidence", "synthesis", "critic"])
    return {"wall_s": round(time.perf_counter() - started, 3), "clusters": len(draft.clusters)}


def lift_launch_limits(sizes: list[tuple[int, int]]) -> None:
    """A fan-out of N one-call agents is an ensemble of N voters at concurrency C: lift the
    deployment's launch bounds (voters, agents, concurrency) to the sizes asked, for this
    process only. The worker never re-checks them: a planned run's limits are its own."""
    most_agents = max((n for n, _ in sizes), default=1)
    most_in_flight = max((c for _, c in sizes), default=1)
    settings.HARNESS_MAX_VOTERS = max(settings.HARNESS_MAX_VOTERS, most_agents)
    settings.HARNESS_MAX_AGENTS = max(settings.HARNESS_MAX_AGENTS, most_agents)
    settings.HARNESS_MAX_CONCURRENCY = max(settings.HARNESS_MAX_CONCURRENCY, most_in_flight)


def _size(text: str) -> tuple[int, int]:
    n, sep, c = text.lower().partition("x")
    if not sep or not n.isdigit() or not c.isdigit() or int(n) < 1 or int(c) < 1:
        raise CommandError(f"--size takes NxC with positive whole numbers, got {text!r}")
    return int(n), int(c)


class Command(BaseCommand):
    help = "Benchmark the fan-out against its peers, and the aggregation (see the module doc)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
        parser.add_argument(
            "--size",
            nargs="+",
            default=["100x10", "1000x100"],
            metavar="NxC",
            help="agents x concurrency, e.g. 10000x1000 (the bench lifts the launch bounds)",
        )
        add_latency_options(
            parser,
            default_ms=1000,
            sigma_help="a log-normal latency mix with median --latency-ms (e.g. 1.0); peers get "
            "the same per-agent latencies",
        )
        parser.add_argument(
            "--workers",
            type=int,
            nargs="+",
            default=[1, 2],
            help="worker processes for the throughput scenario (each runs C threads)",
        )
        parser.add_argument("--findings", type=int, nargs="+", default=[1000, 10_000])
        parser.add_argument("--rates", type=int, nargs="+", default=[50, 500], metavar="PER_S")
        parser.add_argument("--pages", type=int, nargs="+", default=[1, 10])
        parser.add_argument("--live-seconds", type=float, default=5.0)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **opts: Any) -> None:
        chosen = opts["scenarios"] or list(SCENARIOS)
        unknown = sorted(set(chosen) - set(SCENARIOS))
        if unknown:
            raise CommandError(
                f"unknown {noun(len(unknown), 'scenario')} {', '.join(unknown)}; "
                f"choose from {SCENARIOS}"
            )
        sizes = [_size(text) for text in opts["size"]]
        host = machine()
        # One Redis for the whole bench: launch_run stops a private Redis it started itself,
        # and this process's connections must outlive each run.
        redis_proc = None
        if {"fanout", "throughput", "live", "adaptive"} & set(
            chosen
        ) and settings.HARNESS_PRIVATE_REDIS:
            redis_proc = ensure_private_redis(
                settings.DATA_DIR, settings.HARNESS_PRIVATE_REDIS_PORT
            )
        try:
            self._run(chosen, sizes, host, opts)
        finally:
            if redis_proc is not None:
                stop_private_redis(redis_proc)

    def _run(
        self,
        chosen: list[str],
        sizes: list[tuple[int, int]],
        host: dict[str, Any],
        opts: dict[str, Any],
    ) -> None:
        latency = opts["latency_ms"]
        with tempfile.TemporaryDirectory(dir=settings.DATA_DIR) as root:
            target = Path(root) / "one-file"
            target.mkdir()
            (target / "app.py").write_text(TARGET_SOURCE)
            # The bench's own target, allowed for this process only (launch_run checks roots).
            settings.HARNESS_TARGET_ROOTS = [*settings.HARNESS_TARGET_ROOTS, Path(root)]
            lift_launch_limits(sizes)
            sigma = opts["latency_sigma"]
            for n, c in sizes:
                params: dict[str, Any] = {"n": n, "c": c, "latency_ms": latency}
                if sigma:
                    params["latency_sigma"] = sigma
                ours = None
                latencies = None
                if "fanout" in chosen:
                    figures, run_id = fanout(n, c, latency, target, sigma=sigma)
                    ours = figures["wall_s"]
                    latencies = run_latencies(run_id, latency, sigma) if sigma else None
                    self._emit(opts, "fanout", params, host, figures)
                if "peers" in chosen:
                    if sigma and latencies is None:
                        # Without our run, the same draws for keys 0..N-1.
                        draws = (agent_latency_ms(latency, sigma, str(i)) for i in range(n))
                        latencies = [ms / 1000 for ms in draws]
                    figures = peers(n, c, latency, ours, latencies)
                    self._emit(opts, "peers", params, host, figures)
                if "throughput" in chosen:
                    # Latency 0: how many agents a second the harness itself completes.
                    for workers in opts["workers"]:
                        figures, _ = fanout(n, c, 0, target, workers=workers)
                        wparams = {"n": n, "c": c, "latency_ms": 0, "workers": workers}
                        self._emit(opts, "throughput", wparams, host, figures)
            if "adaptive" in chosen:
                self._adaptive(Path(root), host, opts)
            if "live" in chosen:
                for rate in opts["rates"]:
                    for pages in opts["pages"]:
                        figures = live_latency(rate, pages, opts["live_seconds"], target)
                        params = {"events_per_s": rate, "pages": pages}
                        self._emit(opts, "live", params, host, figures)
        if "aggregation" in chosen:
            for count in opts["findings"]:
                self._emit(opts, "aggregation", {"findings": count}, host, aggregation(count))

    def _adaptive(self, root: Path, host: dict[str, Any], opts: dict[str, Any]) -> None:
        concurrency = 8
        lift_launch_limits([(shape.agents, concurrency) for shape in adaptive_bench.SHAPES])
        procs = _start_workers(1, concurrency)
        try:
            for shape in adaptive_bench.SHAPES:
                params, figures = adaptive_bench.compare(root, shape, concurrency)
                self._emit(opts, "adaptive", params, host, figures)
        finally:
            for proc in procs:
                stop_process(proc)

    def _emit(
        self,
        opts: dict[str, Any],
        scenario: str,
        params: dict[str, Any],
        host: dict[str, Any],
        figures: dict[str, Any],
    ) -> None:
        record = {"scenario": scenario, "parameters": params, "machine": host, "figures": figures}
        if opts["json"]:
            self.stdout.write(json.dumps(record))
        else:
            shown = ", ".join(f"{k}={v}" for k, v in figures.items())
            self.stdout.write(f"{scenario} {params}: {shown}")
