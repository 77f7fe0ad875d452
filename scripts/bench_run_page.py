"""Benchmark: server-side render time of the run page for a run with 1,000 agents.

    .venv/bin/python scripts/bench_run_page.py [--agents 1000] [--repeat 5] [--finished]
        [--profile 25]

Builds the run in a throwaway test database (bulk_create, a three-level tree with findings and
events), then times GET /runs/<id>/ through the Django test client (middleware, templates,
everything but the network) and one live update of the consumer. Prints the figures; asserts
nothing (timing belongs in a benchmark, not in a test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")
os.environ.setdefault("HARNESS_TESTING", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--shape",
        choices=["audit", "spawned"],
        default="audit",
        help="audit: planned agents in nested folders, 3 lenses (what a codebase audit plans); "
        "spawned: 1%% planned agents, the rest spawned two levels under them",
    )
    parser.add_argument(
        "--finished",
        action="store_true",
        help="every agent succeeded and the run waits for review (a finished run's page)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after timing, profile one render and print its N most expensive functions",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Not setup_test_environment(): its instrumented template rendering (a signal per included
    # template) would inflate the figure; the test client only needs its host allowed.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=False)
    try:
        run_benchmark(args, CaptureQueriesContext, connection)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run_benchmark(args: argparse.Namespace, capture: type, connection: object) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.utils import timezone

    from runs.models import Event, Finding, Run, Task
    from runs.pages.run.live import LiveState, render_update
    from runs.roles import ensure_roles
    from tests.runs.factories import make_run, task_fields

    agents, repeat, shape = args.agents, args.repeat, args.shape
    running = "succeeded" if args.finished else "running"
    groups = ensure_roles()
    user = User.objects.create_user("bench", password=None)
    user.groups.add(groups["operator"])
    run = make_run(user)
    if shape == "audit":
        # Files of 20 packages x N modules, 3 lenses each, a tenth of them still running.
        lenses = ("security", "reliability", "maintainability")
        files = max(1, agents // len(lenses))
        tasks = Task.objects.bulk_create(
            [
                Task(
                    **task_fields(
                        run,
                        group=f"src/pkg{i % 20}/mod{i % 7}",
                        scope_label=f"src/pkg{i % 20}/mod{i % 7}/file_{i}.py",
                        lens=lens,
                        status=running if i % 10 == 0 else "succeeded",
                    )
                )
                for i in range(files)
                for lens in lenses
            ],
            batch_size=1000,
        )
        low = tasks
    else:
        # 1% roots x 9 children x the rest as grandchildren, created level by level.
        roots = agents // 100 or 1
        top = Task.objects.bulk_create([Task(**task_fields(run)) for _ in range(roots)])
        mid = Task.objects.bulk_create(
            [Task(**task_fields(run, parent=p, lens="reliability")) for p in top for _ in range(9)]
        )
        per = max(1, (agents - len(top) - len(mid)) // max(1, len(mid)))
        low = Task.objects.bulk_create(
            [
                Task(**task_fields(run, parent=p, status=running, finished_at=None))
                for p in mid
                for _ in range(per)
            ]
        )
        tasks = top + mid + low
    Finding.objects.bulk_create(
        [
            Finding(
                run=run,
                task=t,
                title=f"finding {i}",
                severity="high",
                path="app/x.py",
                line_start=i,
                fingerprint=f"fp{i}",
            )
            for i, t in enumerate(tasks[:200])
        ]
    )
    Event.objects.bulk_create(
        [Event(run=run, seq=i + 1, type="task.started", task=t) for i, t in enumerate(tasks)]
    )
    if args.finished:
        now = timezone.now()
        Task.objects.filter(run=run, finished_at__isnull=True).update(finished_at=now)
        Run.objects.filter(pk=run.pk).update(status="awaiting_review", finished_at=now)
    Run.objects.filter(pk=run.pk).update(
        last_seq=len(tasks),
        tasks_total=len(tasks),
        tasks_done=sum(1 for t in tasks if t.status == "succeeded"),
        findings_count=200,
    )
    client = Client()
    client.force_login(user)
    url = f"/runs/{run.pk}/"
    client.get(url)  # warm the template cache
    timings = []
    for _ in range(repeat):
        with capture(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    size = len(response.content)
    print(
        f"run page, {len(tasks)} agents: median {statistics.median(timings) * 1000:.0f} ms, "
        f"best {min(timings) * 1000:.0f} ms over {repeat} renders; "
        f"{len(queries.captured_queries)} queries; {size / 1024:.0f} KiB of HTML"
    )
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        client.get(url)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    # One live update: a single agent finished (row + its ancestors + panels + one event).
    state = LiveState(since=len(tasks))
    render_update(run.pk, user, state, snapshot=True)
    leaf = low[-1]
    Task.objects.filter(pk=leaf.pk).update(status="succeeded")
    Event.objects.create(run=run, seq=len(tasks) + 1, type="task.succeeded", task=leaf)
    Run.objects.filter(pk=run.pk).update(last_seq=len(tasks) + 1)
    started = time.perf_counter()
    html = render_update(run.pk, user, state, snapshot=False)
    took = time.perf_counter() - started
    print(
        f"live update after one agent finished: {took * 1000:.0f} ms, "
        f"{len(html) / 1024:.1f} KiB pushed, tree re-rendered: {'id="tree-body"' in html}"
    )


if __name__ == "__main__":
    main()
