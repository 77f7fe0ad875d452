"""Spawn requests are checked by the engine: depth, fan-out, total agents, duplicates, scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.contract import AgentOutput, AgentResult, SpawnOut, Usage
from agents.playbooks import get_playbook
from runs.actions import completion, enqueue, launch_run
from runs.models import Event, Run, Task
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_task(tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any) -> Task:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = make_target(tmp_path.resolve(), 6)
    with django_capture_on_commit_callbacks(execute=False):
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            max_depth=2,
            options={"chunk_files": 6},
        )
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, max_children=2)
    run.refresh_from_db()
    files = sorted(run.snapshot_info and _paths(run))
    task = Task.objects.create(
        run=run,
        key="k" * 64,
        step="audit",
        role="auditor",
        lens="security",
        scope={"files": files},
        status="running",
    )
    return task


def _paths(run: Run) -> list[str]:
    from agents.snapshot import open_snapshot

    return open_snapshot(run.snapshot_ref).paths()


def _complete(task: Task, spawn: list[SpawnOut]) -> None:
    result = AgentResult(
        output=AgentOutput(spawn=spawn), usage=Usage(), model="m", provider="heuristic"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
        assert completion.complete_task(task, result, get_playbook("codebase-audit"))


def _refusals(run: Run) -> list[str]:
    return [e.payload["reason"] for e in Event.objects.filter(run=run, type="spawn.refused")]


def test_fan_out_beyond_max_children_is_refused_as_an_event(running_task: Task):
    files = running_task.scope["files"]
    _complete(running_task, [SpawnOut(scope={"files": [f]}, why=f"look at {f}") for f in files[:4]])
    assert Task.objects.filter(parent=running_task).count() == 2
    assert _refusals(running_task.run) == ["max 2 children per agent reached"] * 2


def test_spawn_below_max_depth_is_refused(running_task: Task):
    Task.objects.filter(pk=running_task.pk).update(depth=2)
    running_task.refresh_from_db()
    _complete(running_task, [SpawnOut(scope={"files": running_task.scope["files"][:1]}, why="x")])
    assert not Task.objects.filter(parent=running_task).exists()
    assert _refusals(running_task.run) == ["max depth 2 reached"]


def test_duplicate_spawn_is_refused(running_task: Task):
    scope = {"files": running_task.scope["files"][:1]}
    _complete(
        running_task, [SpawnOut(scope=scope, why="first"), SpawnOut(scope=scope, why="again")]
    )
    assert Task.objects.filter(parent=running_task).count() == 1
    assert _refusals(running_task.run) == [
        "duplicate: a task with this scope and lens already exists"
    ]


def test_spawn_outside_the_snapshot_is_refused(running_task: Task):
    _complete(running_task, [SpawnOut(scope={"files": ["../../etc/passwd"]}, why="escape")])
    assert not Task.objects.filter(parent=running_task).exists()
    assert _refusals(running_task.run) == [
        "the requested scope is not a list of files in the snapshot"
    ]


def test_max_agents_per_run_is_enforced(running_task: Task):
    Run.objects.filter(pk=running_task.run_id).update(max_agents=1, max_children=10)
    running_task.run.refresh_from_db()
    _complete(running_task, [SpawnOut(scope={"files": running_task.scope["files"][:1]}, why="x")])
    assert _refusals(running_task.run) == ["max 1 agents per run reached"]
