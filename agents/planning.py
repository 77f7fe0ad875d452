"""Planning a run: decompose its snapshot with its playbook into the task DAG."""

from __future__ import annotations

import logging

from django.db import transaction

from agents.decompose import PlanningError, plan
from agents.engine import create_planned_tasks
from agents.playbooks import Playbook
from agents.runtime import rebuild_budget
from agents.snapshot import SnapshotError
from agents.snapshot import open_snapshot
from runs.events import record_event
from runs.models import Run

logger = logging.getLogger(__name__)


def plan_run(run_id: int) -> None:
    """Idempotent: a redelivered plan message continues a run left in ``planning``."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.status == Run.Status.PENDING:
        with transaction.atomic():
            if run.transition(Run.Status.PLANNING):
                record_event(run, "run.planning", {"playbook": run.playbook})
    if run.status != Run.Status.PLANNING:
        return
    try:
        playbook = Playbook.from_config(run.config)
        snapshot = open_snapshot(run.snapshot_digest)
        specs = plan(playbook, snapshot.manifest.to_dict())
    except (PlanningError, SnapshotError) as exc:
        _fail(run, str(exc))
        return
    rebuild_budget(run)
    create_planned_tasks(run, playbook, specs)


def _fail(run: Run, reason: str) -> None:
    with transaction.atomic():
        if run.transition(Run.Status.FAILED, reason):
            record_event(run, "run.failed", {"reason": reason})
