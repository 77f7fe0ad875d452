"""Factories for run pages: rows made directly, no engine (so view and consumer tests stay fast)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from runs.actions.new_tasks import task_created
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event, record_events
from runs.models import Event, Finding, Report, Run, Task

_counter = itertools.count(1)


def make_run(user: Any = None, **fields: Any) -> Run:
    defaults: dict[str, Any] = {
        "playbook": "codebase-audit",
        "target_label": "samples/vulnerable_app",
        "snapshot_digest": "0" * 64,
        "launched_by": user,
        "status": Run.Status.RUNNING,
        "budget_usd": Decimal("5"),
        "started_at": timezone.now() - timedelta(seconds=30),
    }
    defaults.update(fields)
    finished = {"awaiting_review", "approved", "rejected", "cancelled", "failed"}
    if defaults["status"] in finished:
        # As the state machine leaves them: nothing more happens without a person.
        defaults.setdefault("finished_at", timezone.now())
    return Run.objects.create(**defaults)


def task_fields(run: Run, parent: Task | None = None, **fields: Any) -> dict[str, Any]:
    n = next(_counter)
    now = timezone.now()
    defaults: dict[str, Any] = {
        "run": run,
        "parent": parent,
        "depth": (parent.depth + 1) if parent else 0,
        "key": hashlib.sha256(f"task-{n}".encode()).hexdigest(),
        "step": "audit",
        "role": "auditor",
        "lens": "security",
        "scope_label": f"app/module_{n}.py",
        "why": "chunk of the codebase",
        "status": Task.Status.SUCCEEDED,
        "attempts": 1,
        "tokens_in": 1200,
        "tokens_out": 300,
        "cost_usd": Decimal("0.0021"),
        "queued_at": now - timedelta(seconds=20),
        "started_at": now - timedelta(seconds=18),
        "finished_at": now - timedelta(seconds=10),
        "model_seconds": 5.0,
        "tool_seconds": 1.5,
    }
    defaults.update(fields)
    return defaults


def make_task(run: Run, parent: Task | None = None, **fields: Any) -> Task:
    return Task.objects.create(**task_fields(run, parent, **fields))


def make_tree(run: Run, roots: int = 3, children: int = 3, grandchildren: int = 2) -> list[Task]:
    """A three-level tree, bulk-created level by level (parents need ids first)."""
    top = Task.objects.bulk_create([Task(**task_fields(run)) for _ in range(roots)])
    mid = Task.objects.bulk_create(
        [
            Task(**task_fields(run, parent=p, lens="reliability"))
            for p in top
            for _ in range(children)
        ]
    )
    low = Task.objects.bulk_create(
        [
            Task(**task_fields(run, parent=p, status=Task.Status.RUNNING, finished_at=None))
            for p in mid
            for _ in range(grandchildren)
        ]
    )
    all_tasks = top + mid + low
    Run.objects.filter(pk=run.pk).update(tasks_total=len(all_tasks), tasks_done=len(top) + len(mid))
    run.refresh_from_db()
    return all_tasks


def make_finding(run: Run, task: Task, **fields: Any) -> Finding:
    n = next(_counter)
    defaults: dict[str, Any] = {
        "run": run,
        "task": task,
        "lens": "security",
        "title": f"SQL built from user input #{n}",
        "severity": Finding.Severity.HIGH,
        "confidence": 0.8,
        "path": "app/db.py",
        "line_start": 10 + n,
        "fingerprint": f"fp-{n}",
    }
    defaults.update(fields)
    return Finding.objects.create(**defaults)


# The smallest valid payload of the types tests emit; a test passes only what it cares about.
MINIMAL_PAYLOADS: dict[str, dict[str, Any]] = {
    "task.started": {"attempt": 1},
    "task.succeeded": {
        "tokens": {"input": 0, "output": 0},
        "cost_usd": "0",
        "findings": 0,
        "children": 0,
    },
    "task.failed": {"error": "", "attempts": 1},
    "tool.called": {"step": 0, "tool": "read_file", "reason": ""},
}


def emit(run: Run, type: str, task: Task | None = None, **payload: Any) -> Event:
    """Record an event the way the engine does (inside a transaction, broadcast after commit)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if type == EventType.TASK_CREATED and task is not None:
            return record_events(run, [task_created(task)])[0]
        full = {**MINIMAL_PAYLOADS.get(type, {}), **payload}
        return record_event(run, EventType(type), full, task=task)


def make_report(run: Run, html: str = "<h2>Summary</h2><p>Three issues.</p>") -> Report:
    return Report.objects.create(run=run, chain=["dedup", "synthesis"], html=html, source_text="")


def make_audit(
    run: Run, folders: list[str], files: int, lenses: tuple[str, ...] = ("security", "reliability")
) -> list[Task]:
    """Planned agents as a folder-by-folder audit plans them: one per file and lens, grouped by
    the file's folder (bulk-created: thousands take a fraction of a second)."""
    tasks = Task.objects.bulk_create(
        [
            Task(
                **task_fields(
                    run,
                    scope_label=f"{folder}/file_{i}.py",
                    group=folder,
                    lens=lens,
                    status=Task.Status.PENDING,
                    queued_at=None,
                    started_at=None,
                    finished_at=None,
                    tokens_in=0,
                    tokens_out=0,
                    cost_usd=Decimal(0),
                )
            )
            for folder in folders
            for i in range(files)
            for lens in lenses
        ],
        batch_size=1000,
    )
    Run.objects.filter(pk=run.pk).update(tasks_total=len(tasks))
    run.refresh_from_db()
    return tasks
