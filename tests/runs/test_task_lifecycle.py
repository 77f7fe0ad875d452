"""An agent's life is one table on the model: named moves, each from its allowed statuses to one
status. A forbidden move fails in that one place, before any row changes, and the docstring that
documents the life of an agent says exactly what the table does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runs.models import Run, Task
from runs.models.task import LIFECYCLE, ForbiddenMove, allowed_sources
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db

S = Task.Status


def test_every_move_is_in_the_table_and_every_status_can_be_reached() -> None:
    assert set(LIFECYCLE) == set(Task.Move.values)
    targets = {target for _, target in LIFECYCLE.values()}
    assert targets | {S.PENDING} == set(S.values)
    # Every status an agent can be in while unfinished has a way out.
    sources = set().union(*(froms for froms, _ in LIFECYCLE.values()))
    assert {S.PENDING, S.QUEUED, S.RUNNING, S.RETRYING, S.AWAITING_APPROVAL} <= sources


def test_the_docstring_documents_the_table() -> None:
    doc = Task.__doc__ or ""
    documented: dict[str, tuple[set[str], str]] = {}
    for line in doc.splitlines():
        m = re.match(r"\s+([a-z_]+)\s+([a-z_ |]+?) → ([a-z_]+)", line)
        if m and m.group(1) in LIFECYCLE:
            froms = {s.strip() for s in m.group(2).split("|")}
            documented[m.group(1)] = (froms, m.group(3))
    assert documented == {
        move: ({str(s) for s in froms}, str(target)) for move, (froms, target) in LIFECYCLE.items()
    }


def test_a_forbidden_move_raises_and_changes_nothing() -> None:
    run = make_run()
    task = make_task(run, status=S.PENDING, started_at=None, finished_at=None)
    with pytest.raises(ForbiddenMove, match="cannot move from pending to succeeded"):
        task.move(Task.Move.SUCCEED, only_from=[S.PENDING])
    with pytest.raises(ForbiddenMove, match="no such move"):
        Task.move_many([task], "teleport")  # type: ignore[arg-type]
    task.refresh_from_db()
    assert task.status == S.PENDING
    assert Run.objects.get(pk=run.pk).tasks_done == 0


def test_leaving_a_finished_status_names_exactly_one() -> None:
    with pytest.raises(ForbiddenMove, match="one finished status"):
        allowed_sources(Task.Move.NEW_TRY)
    assert allowed_sources(Task.Move.NEW_TRY, [S.FAILED]) == ([S.FAILED], S.PENDING)


def test_an_allowed_move_is_conditional_on_the_status_the_row_has_now() -> None:
    run = make_run()
    task = make_task(run, status=S.RUNNING, finished_at=None)
    stale = Task.objects.get(pk=task.pk)
    assert task.move(Task.Move.SUCCEED)
    # A second worker holding the old copy loses: the row is no longer running.
    assert not stale.move(Task.Move.FAIL, error="late")
    assert Task.objects.get(pk=task.pk).status == S.SUCCEEDED
    assert Run.objects.get(pk=run.pk).tasks_done == 1


def test_moves_keep_the_runs_counters() -> None:
    run = make_run()
    tasks = [make_task(run, status=S.RUNNING, finished_at=None) for _ in range(3)]
    Task.move_many(tasks[:2], Task.Move.FAIL)
    Task.move_many(tasks[2:], Task.Move.CANCEL)
    run.refresh_from_db()
    assert (run.tasks_failed, run.tasks_skipped) == (2, 1)
    Task.move_many(tasks[:2], Task.Move.NEW_TRY, only_from=[S.FAILED])
    run.refresh_from_db()
    assert run.tasks_failed == 0
    assert {t.status for t in tasks[:2]} == {S.PENDING}


def test_no_action_writes_a_task_status_but_through_a_move() -> None:
    """The claim is the one UPDATE outside ``move`` (it also checks the holder's lease), and it
    takes its statuses from the table."""
    root = Path(__file__).resolve().parents[2] / "runs"
    offenders = []
    for path in root.rglob("*.py"):
        if "migrations" in path.parts or path.name == "task.py":
            continue
        text = path.read_text()
        for m in re.finditer(r"\.update\([^)]*\bstatus=Task\.Status\.(\w+)", text, re.S):
            offenders.append(f"{path.relative_to(root)}: {m.group(1)}")
    assert offenders == ["actions/claims.py: RUNNING"]
