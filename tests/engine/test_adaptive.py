"""Adaptive fan-out with real Celery worker processes, real Redis and the test database: scouts
first, more agents where they find more, a group stops when its new agents only repeat what is
known, every decision an event (one per group and wave, whatever the concurrency) shown in the
agent tree, and max agents bounds every wave."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from runs.actions import launch_run
from runs.benchmarks.uneven import write_uneven_target
from runs.models import Event, Run, Task
from tests.engine.helpers import wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

COPY = '''"""Generated client."""

import pickle
import subprocess


def call_remote(command_text):
    return subprocess.call("run " + command_text, shell=True)


def decode_reply(reply_blob):
    return pickle.loads(reply_blob)
'''


def _launch(target: Path, **options: Any) -> Run:
    return launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=8,
        budget_usd="100",
        options={"chunk_files": 1, "adaptive": True, **options},
    )


def _decisions(run: Run) -> list[dict[str, Any]]:
    rows = Event.objects.filter(run=run, type="adaptive.decided").order_by("seq")
    return [e.payload for e in rows]


@pytest.fixture
def targets(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    return tmp_path


def test_decisions_are_events_once_per_group_and_wave_and_shown_in_the_tree(
    celery_worker: Any, targets: Path, operator_client: Client
) -> None:
    celery_worker(concurrency=8, name="adaptive", pool="threads")
    layout = write_uneven_target(targets / "t", seed=5, folders=6, files=10, flawed=2, stray=0)
    run = wait_for_run(_launch(targets / "t").pk)
    assert run.status == Run.Status.AWAITING_REVIEW

    decisions = _decisions(run)
    # One decision per (group, wave), although scouts of a group finish on parallel threads.
    waves = Counter((d["group"], d["wave"]) for d in decisions)
    assert waves and max(waves.values()) == 1
    by_group: dict[str, list[dict[str, Any]]] = {}
    for d in decisions:
        by_group.setdefault(d["group"], []).append(d)
    assert set(by_group) == set(layout.folders)  # every group was scouted and decided on
    tasks = Counter(Task.objects.filter(run=run).values_list("group", flat=True))
    for folder in layout.folders:
        if folder in layout.dense:
            assert by_group[folder][0]["added"] > 0, by_group[folder]
            assert tasks[folder] > 6
        else:  # scouted, found nothing: covered by its scouts only, and the reason says so
            assert [d["added"] for d in by_group[folder]] == [0]
            assert "sampled, not read in full" in by_group[folder][0]["reason"]
            assert tasks[folder] == 6  # two scout chunks x three lenses
    assert run.tasks_total == sum(tasks.values()) < 6 * 10 * 3
    # Each added agent says which decision made it.
    grown = Task.objects.filter(run=run, group=layout.dense[0], why__startswith="wave 1: ")
    assert grown.count() == by_group[layout.dense[0]][0]["added"]

    html = operator_client.get(run.get_absolute_url()).content.decode()
    grew = by_group[layout.dense[0]][0]["reason"]
    assert grew.startswith(f"{grew.split(' ')[0]} more agents in {layout.dense[0]}/: scouts found")
    assert grew in html.replace("&#x27;", "'")


def test_a_group_whose_new_agents_repeat_known_findings_stops_growing(
    celery_worker: Any, targets: Path
) -> None:
    celery_worker(concurrency=8, name="adaptive-copies", pool="threads")
    generated = targets / "t" / "generated"
    generated.mkdir(parents=True)
    for i in range(10):  # ten copies of one generated file: the same flaws ten times
        (generated / f"client_{i:02d}.py").write_text(COPY)
    run = wait_for_run(_launch(targets / "t").pk)
    assert run.status == Run.Status.AWAITING_REVIEW

    decisions = _decisions(run)
    assert decisions[0]["wave"] == 0 and decisions[0]["added"] > 0  # the scout found flaws
    last = decisions[-1]
    assert last["added"] == 0 and last["repeated"] > 0
    assert "repeat" in last["reason"]
    # It stopped before reading every copy.
    assert run.tasks_total < 10 * 3


def test_max_agents_bounds_every_wave(celery_worker: Any, targets: Path) -> None:
    celery_worker(concurrency=8, name="adaptive-cap", pool="threads")
    write_uneven_target(targets / "t", seed=9, folders=2, files=10, flawed=2, stray=0, density=1)
    run = wait_for_run(_launch(targets / "t", max_agents=18).pk)
    assert run.status == Run.Status.AWAITING_REVIEW

    assert run.tasks_total <= 18  # 12 scouts, then one wave of two chunks at most
    assert Task.objects.filter(run=run).count() == run.tasks_total
    reasons = " ".join(d["reason"] for d in _decisions(run))
    assert "max agents" in reasons
