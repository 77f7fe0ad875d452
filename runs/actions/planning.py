"""Planning a run: decompose its snapshot with its playbook into the task DAG."""

from __future__ import annotations

import logging

from django.db import transaction
from opentelemetry.trace import Status, StatusCode

from agents import semconv
from agents.planning import PlanningError, TaskSpec, plan
from agents.playbooks import Playbook
from agents.snapshot import SnapshotError, open_snapshot
from runs import allowances
from runs.actions.dispatch import schedule_dispatch
from runs.actions.new_tasks import task_created, task_from_spec
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event, record_events
from runs.models import Run, Task
from runs.observability.tracing import end_run_trace_after_commit, run_span
from runs.run_budget import rebuild_budget

logger = logging.getLogger(__name__)


def plan_run(run_id: int) -> None:
    """Idempotent: a redelivered plan message continues a run left in ``planning``."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.status == Run.Status.PENDING:
        with transaction.atomic():
            if run.transition(Run.Status.PLANNING):
                record_event(run, EventType.RUN_PLANNING, {"playbook": run.playbook})
    if run.status != Run.Status.PLANNING:
        return
    with run_span(run, "plan") as span:
        try:
            playbook = run.resolved_playbook
            snapshot = open_snapshot(run.snapshot_ref)
            specs = plan(playbook, snapshot.manifest.to_dict(), snapshot.read_text)
        except (PlanningError, SnapshotError) as exc:
            span.set_attribute(semconv.ERROR_TYPE, type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
            _fail(run, str(exc))
            return
        rebuild_budget(run)
        sizes = {path: int(meta.get("size", 0)) for path, meta in snapshot.manifest.files.items()}
        created = create_planned_tasks(run, playbook, specs, sizes)
        span.set_attribute("harness.tasks.created", created)


def _fail(run: Run, reason: str) -> None:
    with transaction.atomic():
        if run.transition(Run.Status.FAILED, reason):
            record_event(run, EventType.RUN_FAILED, {"reason": reason})
            end_run_trace_after_commit(run)


def create_planned_tasks(
    run: Run, playbook: Playbook, specs: list[TaskSpec], sizes: dict[str, int] | None = None
) -> int:
    """Create the planned root tasks (idempotent: a re-plan after a crash creates nothing new),
    carve their groups' slices of the budget (``runs.allowances``; ``sizes`` of the snapshot's
    files weigh them) and move the run to running. Returns the number of tasks created."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status != Run.Status.PLANNING:
            return 0
        existing = set(Task.objects.filter(run=run).values_list("key", flat=True))
        new = [s for s in specs if s.key not in existing]
        split = allowances.split_of(run)
        tasks = [task_from_spec(run, playbook, spec) for spec in new]
        for task in tasks:
            # Ungrouped agents (a final synthesis) draw on the run's own budget, not a slice.
            weight = allowances.scope_weight(split, task.scope, sizes or {})
            task.allowance_weight = weight if task.group else 0
        Task.objects.bulk_create(tasks)
        by_key = {t.key: t for t in Task.objects.filter(run=run)}
        through = Task.depends_on.through
        links = [
            through(from_task_id=by_key[s.key].pk, to_task_id=by_key[dep].pk)
            for s in new
            for dep in s.depends_on
        ]
        through.objects.bulk_create(links)
        Run.objects.filter(pk=run.pk).update(tasks_total=len(by_key))
        run.tasks_total = len(by_key)
        carved = allowances.plan_groups(run, by_key.values())
        record_events(run, [*carved, *(task_created(by_key[t.key]) for t in tasks)])
        run.transition(Run.Status.RUNNING)
        record_event(run, EventType.RUN_RUNNING, {"tasks": len(by_key)})
        schedule_dispatch(run.pk)
    return len(new)
