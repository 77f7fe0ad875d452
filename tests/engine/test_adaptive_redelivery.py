"""Adaptive decisions survive re-delivery: an agent's outcome delivered again, dispatch passes
repeated and a direct second call decide nothing new (one decision per group and wave). The
agents run in this process (``runs.engine.worker.execute``) so the order is exact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from runs.actions import adaptive, enqueue, launch_run
from runs.actions.dispatch import dispatch
from runs.actions.outcomes import lock_run
from runs.actions.planning import plan_run
from runs.benchmarks.uneven import write_uneven_target
from runs.engine import worker
from runs.models import Event, Run, Task

pytestmark = pytest.mark.django_db(transaction=True)


def _decisions(run: Run) -> Counter[tuple[str, int]]:
    rows = Event.objects.filter(run=run, type="adaptive.decided").values_list("payload", flat=True)
    return Counter((p["group"], p["wave"]) for p in rows)


def test_redelivered_outcomes_and_repeated_dispatch_decide_nothing_twice(
    tmp_path: Path, settings: Any, monkeypatch: Any
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn()
    )
    write_uneven_target(tmp_path / "t", seed=2, folders=2, files=10, flawed=1, stray=0, density=1)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(tmp_path / "t"),
        max_concurrency=4,
        budget_usd="100",
        aggregation=["dedup"],
        options={"chunk_files": 1, "adaptive": True},
    )
    plan_run(run.pk)
    assert Task.objects.filter(run=run).count() == 2 * 2 * 3  # the scouts only
    dispatch(run.pk)
    done: list[int] = []
    while queued := list(Task.objects.filter(run=run, status="queued").order_by("pk")):
        for task in queued:
            worker.execute(task.pk)
            done.append(task.pk)
            # The same agent's message delivered again, at once: it must change nothing.
            before = (_decisions(run), Task.objects.filter(run=run).count())
            worker.execute(task.pk)
            assert (_decisions(run), Task.objects.filter(run=run).count()) == before
        dispatch(run.pk)
    decisions = _decisions(run)
    assert decisions and max(decisions.values()) == 1
    total = Task.objects.filter(run=run).count()
    assert total > 12  # the dense folder grew
    for _ in range(3):
        dispatch(run.pk)
    with transaction.atomic():
        lock_run(run.pk)
        assert adaptive.decide_groups(Run.objects.get(pk=run.pk)) == 0
    assert _decisions(run) == decisions
    assert Task.objects.filter(run=run).count() == total
    assert Run.objects.get(pk=run.pk).tasks_total == total
