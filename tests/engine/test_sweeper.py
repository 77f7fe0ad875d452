"""Liveness without messages: the sweeper moves on runs whose messages were all lost."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from runs.actions import enqueue, launch_run
from runs.actions.planning import plan_run
from runs.actions.sweep import sweep
from runs.engine import sweeper
from runs.models import Event, Run, Task
from tests.engine.helpers import make_target, wait_for_run


@pytest.fixture
def lost(tmp_path: Path, settings: Any, monkeypatch: Any) -> list[tuple[str, int]]:
    """Every message this process sends is recorded and dropped (as a broker that lost them)."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(
        enqueue, "send", lambda name, object_id, countdown=None: sent.append((name, object_id))
    )
    return sent


def _launch(tmp_path: Path, files: int = 3) -> Run:
    target = make_target(tmp_path.resolve(), files)
    return launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=4,
        options={"chunk_files": 1},
    )


@pytest.mark.django_db(transaction=True)
def test_sweep_moves_on_only_the_runs_that_went_quiet(
    tmp_path: Path, lost: list[tuple[str, int]], settings: Any
) -> None:
    # Long enough that a loaded machine's launch and planning of the second run still leave
    # the first one "just active" at the first sweep.
    settings.HARNESS_STALL_S = 3
    settings.HARNESS_REQUEUE_AFTER_S = 0.2
    waiting = _launch(tmp_path)  # its plan message was lost
    running = _launch(tmp_path / "b")
    plan_run(running.pk)  # planned, but the dispatch and agent messages were lost
    assert Task.objects.filter(run=running).exists()
    lost.clear()
    assert sweep() == {}  # both just did something: nothing to do yet
    time.sleep(3.2)
    done = sweep()
    assert done == {waiting.pk: "planned again", running.pk: "dispatched"}
    assert (enqueue.PLAN_RUN, waiting.pk) in lost
    agents = [object_id for name, object_id in lost if name == enqueue.RUN_AGENT]
    assert agents and set(agents) <= set(
        Task.objects.filter(run=running).values_list("pk", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_only_one_process_sweeps_each_period(
    tmp_path: Path, lost: list[tuple[str, int]], settings: Any
) -> None:
    settings.HARNESS_SWEEP_S = 2
    assert sweeper.sweep_once("worker-a") is True
    assert sweeper.sweep_once("worker-b") is False


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_run_whose_messages_were_all_lost_still_finishes(
    celery_worker: Any, tmp_path: Path, lost: list[tuple[str, int]]
) -> None:
    run = _launch(tmp_path, files=4)
    plan_run(run.pk)  # planned here; its dispatch message, and every later one, never sent
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING and lost
    celery_worker(
        concurrency=4,
        name="sweeper",
        env={"HARNESS_SWEEP_S": "1", "HARNESS_STALL_S": "1", "HARNESS_REQUEUE_AFTER_S": "1"},
    )
    finished = wait_for_run(run.pk, timeout=120)
    assert finished.status == Run.Status.AWAITING_REVIEW
    assert finished.tasks_done == finished.tasks_total == Task.objects.filter(run=run).count()
    # No message of this run ever reached Redis: only the worker's sweeper could start it.
    assert Event.objects.filter(run=run, type="task.started").count() == finished.tasks_total


def test_an_outage_is_logged_once_and_its_end_too(
    monkeypatch: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.HARNESS_SWEEP_S = 0.01
    calls = {"n": 0}

    def sweep_once(owner: str) -> bool:
        calls["n"] += 1
        if calls["n"] <= 5:
            raise redis.ConnectionError("Connection refused")
        return True

    monkeypatch.setattr(sweeper, "sweep_once", sweep_once)
    with caplog.at_level(logging.INFO, logger="runs.engine.sweeper"):
        thread = sweeper.start("test")
        deadline = time.monotonic() + 10
        while calls["n"] < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        sweeper.stop()
        thread.join(5)
    messages = [r.getMessage() for r in caplog.records if r.name == "runs.engine.sweeper"]
    assert messages[:2] == [
        "sweep skipped until Redis recovers (ConnectionError)",
        "sweeping again: Redis is back",
    ]
    assert not any(r.exc_info for r in caplog.records if r.name == "runs.engine.sweeper")
