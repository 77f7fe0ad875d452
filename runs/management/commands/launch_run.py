"""``manage.py launch_run``: launch a run from the terminal, optionally wait and print JSON.

Works alone on a fresh machine: it applies migrations, starts the private Redis when REDIS_URL is
unset, and starts its own Celery worker for the run's duration when none answers.

Exit status: 0 when the launch was accepted (and, with ``--wait``, the run ended with a report to
review); 1 when the launch was refused or the wait timed out; with ``--wait``, 2 when the run
failed, 3 when its budget ran out, 4 when it was cancelled (the reason is printed on stderr, and
in the JSON summary as ``reason``). With ``--hold-agents`` every agent waits for a reviewer's
approval before it starts; ``--wait`` then stops waiting once nothing can move without one: it
prints how many agents await approval and where to approve them, and exits with 5
(``AWAITING_APPROVAL``; the JSON summary has ``awaiting_approval``, the count). A refused
launch with ``--json`` prints one object, ``{"status": "refused", "reason", "field"}``, so a
script reading stdout always gets an answer.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from agents.wording import count, noun
from harness_site.celery import app
from harness_site.devstack import start_worker, stop_process, worker_pool
from harness_site.localredis import ensure_private_redis, stop_private_redis
from runs.actions import LaunchError, launch_run
from runs.management.options import add_latency_options
from runs.models import Run, Task
from runs.pages.summary import run_summary

# How a followed run's end becomes the command's exit status (see the module doc).
EXIT_STATUS = {Run.Status.FAILED: 2, Run.Status.BUDGET_EXHAUSTED: 3, Run.Status.CANCELLED: 4}
# The run is running, and every agent left waits for a person's approval.
AWAITING_APPROVAL = 5
# Agents in these states still move on their own: while any is, the run is not stuck on a gate.
MOVING = (Task.Status.QUEUED, Task.Status.RUNNING, Task.Status.RETRYING)


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise LaunchError(f"--set takes key=value, got {text!r}", "options")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _options(opts: dict[str, Any]) -> dict[str, Any]:
    """The playbook options of ``--set``, ``--exclude`` and ``--no-default-excludes``."""
    options = dict(_option(o) for o in opts["options"])
    if opts["exclude"]:
        earlier = options.get("exclude", [])  # a --set exclude=… comes first
        listed = earlier if isinstance(earlier, list) else [earlier]
        options["exclude"] = [*listed, *opts["exclude"]]
    if opts["no_default_excludes"]:
        options["default_excludes"] = False
    return options


def _queue_has_consumer(app: Any, timeout: float = 1.0) -> bool:
    """True when a live worker consumes this deployment's queue (a worker of another deployment
    sharing the Redis server does not count)."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return any(q.get("name") == queue for queues in replies.values() for q in queues or [])


class Command(BaseCommand):
    help = "Launch a run of a playbook over a target directory; --wait to follow it to the end."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--playbook", required=True)
        parser.add_argument("--target", required=True, help="a directory under the target roots")
        parser.add_argument("--provider", default="heuristic")
        parser.add_argument("--model", default=None)
        parser.add_argument("--max-concurrency", type=int, default=None)
        parser.add_argument("--budget-usd", default=None)
        parser.add_argument("--budget-tokens", type=int, default=None)
        parser.add_argument("--max-depth", type=int, default=None)
        add_latency_options(
            parser,
            default_ms=0,
            sigma_help="with --latency-ms: each agent's latency drawn from a log-normal "
            "distribution with that median and this shape (e.g. 1.0 for a long tail); 0 = fixed",
        )
        parser.add_argument("--aggregation", default=None, help="comma-separated chain")
        parser.add_argument("--title", default="")
        parser.add_argument(
            "--set",
            dest="options",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="playbook option, e.g. chunk_files=1",
        )
        parser.add_argument(
            "--exclude",
            nargs="+",
            action="extend",
            default=[],
            metavar="GLOB",
            help="leave these out of the snapshot (.gitignore syntax, e.g. 'tests/' '*.txt'), "
            "on top of the default excludes; '!GLOB' keeps what a default leaves out",
        )
        parser.add_argument(
            "--no-default-excludes",
            action="store_true",
            help="read translation catalogues, lock files, dependency and build folders and "
            "minified files too (left out by default)",
        )
        parser.add_argument(
            "--hold-agents",
            action="store_true",
            help="every agent waits for a reviewer's approval before it starts (with --wait: "
            f"exit {AWAITING_APPROVAL} once they all wait, saying where to approve them)",
        )
        parser.add_argument("--wait", action="store_true", help="follow the run to its end")
        parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most")

    def handle(self, *args: Any, **opts: Any) -> None:
        self.err = sys.stderr
        redis_proc = self._ensure_redis()
        self._ensure_schema()
        worker = None
        try:
            try:
                options = _options(opts)
                run = launch_run(
                    user=None,
                    playbook=opts["playbook"],
                    target_path=opts["target"],
                    provider=opts["provider"],
                    model=opts["model"],
                    max_concurrency=opts["max_concurrency"],
                    budget_usd=opts["budget_usd"],
                    budget_tokens=opts["budget_tokens"],
                    max_depth=opts["max_depth"],
                    latency_ms=opts["latency_ms"],
                    latency_sigma=opts["latency_sigma"],
                    aggregation=opts["aggregation"].split(",") if opts["aggregation"] else None,
                    options=options or None,
                    title=opts["title"],
                    hold_agents=opts["hold_agents"],
                )
            except LaunchError as exc:
                self._refuse(exc, opts["json"])
            self.err.write(
                f"Run #{run.pk} launched: {run.playbook} on {run.target_label} [{run.provider}]\n"
            )
            # Launch first (a refused launch starts nothing); the planning message waits in the
            # queue until a worker takes it.
            worker = self._ensure_worker(opts)
            if not (opts["wait"] or worker is not None):
                if opts["json"]:
                    self.stdout.write(json.dumps(run_summary(run)))
                return
            held = self._follow(run.pk, opts["timeout"])
            summary = run_summary(run)
            if held:
                summary["awaiting_approval"] = held
                self._say_held(run, held, own_worker=worker is not None)
                if opts["json"]:
                    self.stdout.write(json.dumps(summary))
                else:
                    self._print_summary(summary)
                raise CommandError(f"Run #{run.pk}: {_held(held)}", returncode=AWAITING_APPROVAL)
            if opts["json"]:
                self.stdout.write(json.dumps(summary))
            else:
                self._print_summary(summary)
            code = EXIT_STATUS.get(summary["status"])
            if code:
                reason = summary["reason"] or "no reason recorded"
                raise CommandError(f"Run #{run.pk} {summary['status']}: {reason}", returncode=code)
        finally:
            if worker is not None:
                stop_process(worker)
            if redis_proc is not None:
                stop_private_redis(redis_proc)

    def _refuse(self, exc: LaunchError, as_json: bool) -> NoReturn:
        """Exit 1 saying why on stderr; with ``--json``, also as the one object on stdout."""
        if as_json:
            answer = {"status": "refused", "reason": str(exc), "field": exc.field}
            self.stdout.write(json.dumps(answer))
        where = f" ({exc.field})" if exc.field else ""
        raise CommandError(f"Launch refused{where}: {exc}")

    # -- set-up -----------------------------------------------------------------------------
    def _ensure_redis(self) -> Any:
        if not settings.HARNESS_PRIVATE_REDIS:
            return None
        proc = ensure_private_redis(settings.DATA_DIR, settings.HARNESS_PRIVATE_REDIS_PORT)
        if proc is not None:
            self.err.write("Started a private Redis for this command (REDIS_URL is unset).\n")
        return proc

    def _ensure_schema(self) -> None:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.err.write("Applying database migrations…\n")
            call_command("migrate", verbosity=0, interactive=False)

    def _ensure_worker(self, opts: dict[str, Any]) -> Any:
        try:
            if _queue_has_consumer(app):
                return None
        except Exception as exc:
            raise CommandError(
                f"Redis at REDIS_URL does not answer: {type(exc).__name__}"
            ) from None
        cap = int(opts["max_concurrency"] or 4)
        pool = worker_pool()
        # Threads: one per agent the run may have in flight. Processes cost memory each.
        concurrency = max(4, cap) if pool == "threads" else max(2, min(16, cap))
        self.err.write(
            f"No Celery worker is answering: starting one ({concurrency} {pool}) for this "
            "run; its log is in var/logs/worker.log.\n"
        )
        proc = start_worker(concurrency=concurrency, name=f"launch-{time.monotonic_ns()}@%h")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CommandError("The Celery worker exited at start; see var/logs/worker.log")
            if _queue_has_consumer(app, timeout=0.5):
                return proc
        raise CommandError("The Celery worker did not answer within 60 s")

    # -- following --------------------------------------------------------------------------
    def _follow(self, run_id: int, timeout: float) -> int:
        """Until the run finishes (0) or stands still on held agents: how many wait."""
        tty = self.err.isatty()
        deadline = time.monotonic() + timeout
        still = 0
        while time.monotonic() < deadline:
            run = Run.objects.get(pk=run_id)
            if tty:
                self._progress(run)
            if run.is_finished:
                if tty:
                    self.err.write("\n")
                return 0
            held = self._held(run)
            # Twice in a row: an agent just approved (or just finished, its next one not yet
            # queued) is not mistaken for a run standing still.
            still = still + 1 if held else 0
            if still >= 2:
                if tty:
                    self.err.write("\n")
                return held
            time.sleep(0.3)
        raise CommandError(f"Run #{run_id} did not finish within {timeout:.0f} s")

    @staticmethod
    def _held(run: Run) -> int:
        """Agents waiting for approval when nothing else of the run moves, else 0."""
        if run.status != Run.Status.RUNNING:
            return 0
        tasks = Task.objects.filter(run=run)
        if tasks.filter(status__in=MOVING).exists():
            return 0
        return tasks.filter(status=Task.Status.AWAITING_APPROVAL).count()

    def _say_held(self, run: Run, held: int, own_worker: bool) -> None:
        self.err.write(
            f"Run #{run.pk}: {_held(held)}. A reviewer approves {noun(held, 'it', 'them')} in the "
            f"dashboard's approvals inbox, /approvals/ (or on the run's page, /runs/{run.pk}/), "
            "e.g. http://127.0.0.1:8000/approvals/ under `make run`.\n"
        )
        if own_worker:
            self.err.write(
                "The worker this command started stops now: approved agents run once a worker "
                "is up (`make run` starts one).\n"
            )

    def _progress(self, run: Any) -> None:
        done = run.tasks_done + run.tasks_failed + run.tasks_skipped
        total = max(run.tasks_total, 1)
        width = 30
        filled = int(width * done / total)
        bar = "█" * filled + "░" * (width - filled)
        self.err.write(
            f"\r{bar} {done}/{run.tasks_total} agents · ${run.cost_usd:.4f} · "
            f"{run.findings_count} findings · {run.status:<16}"
        )
        self.err.flush()

    def _print_summary(self, s: dict[str, Any]) -> None:
        agents = s["agents"]
        budget = f" of ${s['budget_usd']:.2f}" if s["budget_usd"] is not None else ""
        self.stdout.write(
            f"Run #{s['run_id']}: {s['status']}\n"
            f"  agents    {agents['succeeded']} succeeded, {agents['failed']} failed, "
            f"{agents['skipped']} skipped of {agents['total']} (max {s['max_in_flight']} at once)\n"
            f"  findings  {s['findings']}\n"
            f"  cost      ${s['cost_usd']:.6f}{budget}"
            + (" (heuristic: nominal price)" if s["provider"] == "heuristic" else "")
            + "\n"
            f"  tokens    {s['tokens']['input']:,} in / {s['tokens']['output']:,} out\n"
            f"  events    {s['events']}   wall {s['wall_seconds']:.1f} s\n"
        )


def _held(n: int) -> str:
    return f"{count(n, 'agent')} {noun(n, 'awaits', 'await')} approval"
