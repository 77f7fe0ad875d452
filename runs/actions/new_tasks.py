"""A planned task's row and its ``task.created`` event: the planner's, and an adaptive run's
later waves' (``runs.actions.adaptive``, which ``runs.actions.dispatch`` calls, so this module
must not import the planner, which calls dispatch)."""

from __future__ import annotations

from agents.planning import TaskSpec
from agents.playbooks import Playbook, worker_role
from runs.eventlog.event_types import EventType, TaskCreatedPayload, task_created_payload
from runs.models import Run, Task


def task_created(task: Task) -> tuple[EventType, TaskCreatedPayload, Task]:
    """The ``task.created`` event of a planned or spawned task."""
    payload = task_created_payload(
        key=task.key,
        step=task.step,
        lens=task.lens,
        scope=task.scope_label,
        why=task.why,
        parent=task.parent_id,
    )
    return EventType.TASK_CREATED, payload, task


def task_from_spec(
    run: Run, playbook: Playbook, spec: TaskSpec, *, parent: Task | None = None
) -> Task:
    role = playbook.roles.get(spec.role) or playbook.roles[worker_role(playbook)]
    return Task(
        run=run,
        parent=parent,
        depth=(parent.depth + 1) if parent else 0,
        key=spec.key,
        step=spec.step,
        role=role.role,
        lens=spec.lens,
        scope=spec.scope,
        scope_label=spec.scope_label[:300],
        group=spec.group[:300],
        why=spec.why[:500],
        provider=role.provider or run.provider,
        model=spec.model or role.model or run.model,
        critical=role.critical,
        needs_approval=role.needs_approval,
    )
