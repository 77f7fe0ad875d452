"""Subtree budgets with real Celery worker processes, real Redis and the test database: the
offline analyzer on generated targets, every allowance checked against the stored step costs."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Sum

from agents.budget_scopes import group_scope, task_scope
from harness_site.testing.targets import VULNERABLE_MODULE
from runs.actions import launch_run
from runs.allowances import SKIP_PREFIX, scopes_for
from runs.models import Event, Report, Run, Step, Task
from tests.engine.helpers import wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _uneven_target(root: Path) -> Path:
    """A greedy folder (8 big modules, 20 copies of the known problems each) beside three
    small ones (2 modules each, one copy)."""
    target = root / "uneven"
    for i in range(8):
        (target / "big").mkdir(parents=True, exist_ok=True)
        body = "\n".join(VULNERABLE_MODULE.replace("{n}", f"{i}_{k}") for k in range(20))
        (target / "big" / f"mod{i}.py").write_text(body)
    for name in ("alpha", "beta", "gamma"):
        (target / name).mkdir(parents=True)
        for i in range(2):
            (target / name / f"mod{i}.py").write_text(VULNERABLE_MODULE.replace("{n}", str(i)))
    return target


def _launch(target: Path, budget: Decimal | str, split: str, **options: Any) -> Run:
    return launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=6,
        max_depth=2,
        budget_usd=budget,
        aggregation=["dedup", "critic"],
        options={"chunk_files": 1, "budget_split": split, **options},
    )


def _costs(run: Run) -> dict[int, Decimal]:
    return {
        t: c or Decimal(0)
        for t, c in Step.objects.filter(task__run=run, kind="chat")
        .values_list("task_id")
        .annotate(c=Sum("cost_usd"))
    }


def _subtree_spend(run: Run) -> tuple[dict[int, Decimal], dict[str, Decimal]]:
    """What each agent's subtree and each group spent, from the stored calls."""
    costs = _costs(run)
    tasks = {t.pk: t for t in Task.objects.filter(run=run)}
    by_task: dict[int, Decimal] = defaultdict(Decimal)
    by_group: dict[str, Decimal] = defaultdict(Decimal)
    for task in tasks.values():
        cost = costs.get(task.pk, Decimal(0))
        node: Task | None = task
        while node is not None:
            by_task[node.pk] += cost
            root = node
            node = tasks.get(node.parent_id) if node.parent_id else None
        by_group[root.group] += cost
    return by_task, by_group


def _assert_within_allowances(run: Run) -> None:
    by_task, by_group = _subtree_spend(run)
    for group, slice_ in run.allowances.items():
        assert by_group[group] <= Decimal(slice_["usd"]), group
    limited = Task.objects.filter(run=run, allowance_usd__isnull=False)
    assert limited.exists()
    for task in limited:
        assert by_task[task.pk] <= (task.allowance_usd or 0), task.scope_label
    assert run.cost_usd <= (run.budget_usd or 0)


def test_a_greedy_folder_runs_out_of_its_slice_while_the_other_folders_finish(
    celery_worker: Any, tmp_path: Path, settings: Any
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = _uneven_target(tmp_path.resolve())
    celery_worker(concurrency=6, name="subtree", pool="threads")
    probe = wait_for_run(_launch(target, "100", "none").pk)
    _, spent = _subtree_spend(probe)
    small = max(spent[g] for g in ("alpha", "beta", "gamma"))
    # Four equal slices, each worth three small folders: the big one needs far more.
    budget = (small * 12).quantize(Decimal("0.000001"))
    assert spent["big"] > 2 * budget / 4

    run = wait_for_run(_launch(target, budget, "equal").pk)
    assert run.status == Run.Status.AWAITING_REVIEW, run.status_reason  # the run went on
    _assert_within_allowances(run)
    assert set(run.allowances) == {"big", "alpha", "beta", "gamma"}
    tasks = Task.objects.filter(run=run, parent__isnull=True)
    for name in ("alpha", "beta", "gamma"):
        assert {t.status for t in tasks.filter(group=name)} == {"succeeded"}
    stopped = list(Task.objects.filter(run=run, group="big", status="skipped"))
    assert stopped and all(t.error.startswith(SKIP_PREFIX) for t in stopped)
    skips = Event.objects.filter(run=run, type="task.skipped")
    assert {e.payload["reason"].split(" (")[0] for e in skips} == {SKIP_PREFIX}
    # The report names what the allowance left unread.
    notes = " ".join(Report.objects.get(run=run).notes)
    assert "left unread because their subtree's allowance ran out" in notes
    assert stopped[0].scope_label in notes
    # Every allowance is in the log once; finished subtrees gave their leftover back.
    carved = Event.objects.filter(run=run, type="budget.allowance")
    assert carved.filter(task__isnull=True).count() == 4
    per_task: dict[int | None, int] = defaultdict(int)
    for event in carved.filter(task__isnull=False):
        per_task[event.task_id] += 1
    assert per_task and max(per_task.values()) == 1
    returned = Event.objects.filter(run=run, type="budget.returned")
    assert returned.filter(payload__scope__in=[group_scope(g) for g in ("alpha", "beta")])
    scopes = scopes_for(run)
    states = scopes.states([group_scope(g) for g in run.allowances])
    assert all(s.closed and s.held_usd == 0 and s.reserved_usd == 0 for s in states.values())
    # Nothing is held any more: the run's room is its budget less what it spent.
    assert scopes.room_usd() == pytest.approx(float((run.budget_usd or 0) - run.cost_usd), abs=1e-6)


def test_spawned_agents_share_their_spawners_allowance_and_never_exceed_it(
    celery_worker: Any, tmp_path: Path, settings: Any
) -> None:
    """Every root agent reads 4 files and splits them (one file per agent at most): two levels
    of spawns, each child carved from its spawner's allowance while all run at once."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = _uneven_target(tmp_path.resolve())
    celery_worker(concurrency=6, name="spawns", pool="threads")
    run = wait_for_run(
        _launch(target, "0.05", "size", chunk_files=4, agent_max_files=1).pk, timeout=300
    )
    assert run.is_finished and run.status != Run.Status.FAILED, run.status_reason
    _assert_within_allowances(run)
    children = Task.objects.filter(run=run, parent__isnull=False)
    assert children.filter(depth=2).exists()
    spawners = Task.objects.filter(run=run, children__isnull=False).exclude(group="")
    assert spawners.exists()
    for parent in spawners.distinct():
        # A chunk across folders (group "") draws on the run's budget, not on a slice.
        given = [c.allowance_usd for c in parent.children.all()]
        assert parent.allowance_usd is not None and None not in given, parent.scope_label
        assert sum((g or Decimal(0) for g in given), Decimal(0)) <= parent.allowance_usd
    states = scopes_for(run).states([task_scope(t.pk) for t in children])
    # Closed, even those a bulk skip stopped (the run's budget ran out before they started).
    assert states and all(s.closed for s in states.values())


def test_a_hundred_concurrent_spawners_never_exceed_any_allowance(
    celery_worker: Any, tmp_path: Path, settings: Any
) -> None:
    """100 folders, three lenses each: up to 100 root agents in flight at once, each splitting
    its two files into spawned children (one file each) while the others reserve against the
    same groups and the run. The slices are too small for every folder, so allowances bind
    everywhere at once: no level's spend passes its allowance, whatever the interleaving."""
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = tmp_path.resolve() / "hundred"
    for i in range(100):
        folder = target / f"f{i:03d}"
        folder.mkdir(parents=True)
        for k in range(2):
            (folder / f"mod{k}.py").write_text(VULNERABLE_MODULE.replace("{n}", f"{i}_{k}"))
    celery_worker(concurrency=100, name="hundred", pool="threads")
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        max_concurrency=100,
        max_depth=2,
        budget_usd="0.03",
        aggregation=["dedup"],
        options={
            "chunk_files": 2,
            "agent_max_files": 1,
            "budget_split": "equal",
            "max_agents": 900,
        },
    )
    run = wait_for_run(run.pk, timeout=600)
    assert run.is_finished and run.status != Run.Status.FAILED, run.status_reason
    _assert_within_allowances(run)
    roots = Task.objects.filter(run=run, parent__isnull=True).exclude(group="")
    assert roots.count() == 300 and len(run.allowances) == 100
    # They did run side by side: the most root agents running at one moment.
    spans = sorted((t.started_at, t.finished_at) for t in roots if t.started_at and t.finished_at)
    edges = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak >= 20, peak
    assert Task.objects.filter(run=run, parent__isnull=False).exists()  # they did spawn
    # The slices did bind: some agents were stopped by their subtree's allowance.
    assert Task.objects.filter(run=run, error__startswith=SKIP_PREFIX).exists()
