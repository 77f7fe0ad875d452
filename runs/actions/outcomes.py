"""An agent's own state changes after its claim (``runs.actions.claims``): put back to wait or
retry, and how it ends: succeeded (findings and spawn requests stored), failed, skipped for
budget, or cancelled.

Each is one transaction with its events; the lock order is always the run row first, then its
tasks (dispatch does the same), and the next dispatch is scheduled after commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.analysis.ranking import cwe_from_text
from agents.contract import SpawnOut
from agents.planning import scope_label, task_key
from agents.playbooks import Playbook
from agents.snapshot import open_snapshot
from runs import allowances
from runs.actions.dispatch import schedule_dispatch
from runs.actions.new_tasks import task_created
from runs.actions.paid import paid
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_event, record_events
from runs.models import Finding, Run, Task
from runs.observability.tracing import end_run_trace_after_commit
from runs.run_budget import budget_for, spent_reason


def finding_fingerprint(lens: str, rule: str, path: str, line: int | None, title: str) -> str:
    raw = "\x1f".join([lens, rule, path, str(line or ""), title.strip().lower()])
    return hashlib.sha256(raw.encode()).hexdigest()


def lock_run(run_id: int) -> Run:
    """The run's row lock, taken first in every transaction that writes a run's tasks (the one
    lock order: run, then its tasks). Reads only what the log needs; a caller that needs more of
    the run loads it."""
    return Run.objects.select_for_update().only("id", "uid", "last_seq", "status").get(pk=run_id)


def span_fields(task: Task) -> dict[str, Any]:
    # The agent's span id is written with its outcome, not when the span starts.
    return {"span_id": task.span_id} if task.span_id else {}


def wait_for_slot(task: Task) -> None:
    """Every slot of the task's provider is busy: back to the queue, the claim not counted as
    an attempt (the worker re-sends it after a short wait)."""
    task.move(Task.Move.WAIT_FOR_SLOT, attempts=task.attempts - 1)


def retry_task(task: Task, *, delay: float, error: str = "", rate_limited: bool = False) -> None:
    """Put a running agent aside to try again after ``delay`` seconds. Waiting for our own
    shared rate limit (or for the budget's in-flight calls to settle: ``error`` says which) is
    not a failed attempt; a provider or database error is."""
    changes: dict[str, Any] = {"attempts": task.attempts - 1} if rate_limited else {}
    # When its delayed message is due: the sweeper re-sends it if that message was lost.
    changes["retry_at"] = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        run = lock_run(task.run_id)
        if not task.move(Task.Move.RETRY, **changes, **span_fields(task)):
            return
        if rate_limited:
            payload: dict[str, Any] = {"delay_s": round(delay, 2)}
            if error:
                payload["reason"] = error[:300]
            record_event(run, EventType.TASK_RATE_LIMITED, payload, task=task)
        elif error:
            payload = {"attempt": task.attempts, "delay_s": round(delay, 2), "error": error[:300]}
            record_event(run, EventType.TASK_RETRYING, payload, task=task)


def findings_of(run: Run, task: Task, outs: Iterable[Any]) -> list[Finding]:
    seen: set[str] = set()
    findings = []
    for out in outs:
        fingerprint = finding_fingerprint(task.lens, out.rule, out.path, out.line_start, out.title)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        findings.append(
            Finding(
                run=run,
                task=task,
                lens=task.lens,
                rule=out.rule,
                title=out.title,
                detail=out.detail,
                severity=out.severity,
                confidence=out.confidence,
                path=out.path,
                line_start=out.line_start,
                line_end=out.line_end,
                evidence=out.evidence,
                # The analyzer gives it; a model may only name it in its text.
                cwe=out.cwe or cwe_from_text(out.detail),
                fingerprint=fingerprint,
            )
        )
    return findings


def spawn_children(run: Run, parent: Task, playbook: Playbook, requests: list[SpawnOut]) -> int:
    """Create the children an agent asked for, within depth, fan-out and total limits, and
    refuse duplicates. Every request ends as an event, accepted or refused."""
    spec = playbook.roles.get(parent.role)
    held = bool(spec is not None and spec.needs_approval)
    manifest_files = open_snapshot(run.snapshot_ref).manifest.files
    sizes = {path: int(meta.get("size", 0)) for path, meta in manifest_files.items()}
    split = allowances.split_of(run)
    spawned: list[Task] = []
    total = Task.objects.filter(run=run).count()
    existing_children = Task.objects.filter(parent=parent).count()
    created = 0
    events: list[EventItem] = []
    for request in requests:
        label = scope_label([str(p) for p in request.scope.get("files", [])]) or str(
            request.scope.get("document", "scope")
        )
        refusal = ""
        files = request.scope.get("files")
        if spec is None or not spec.can_spawn:
            refusal = "this agent's spec does not allow spawning"
        elif run.status != Run.Status.RUNNING:
            refusal = f"the run is {run.status}"
        elif parent.depth + 1 > run.max_depth:
            refusal = f"max depth {run.max_depth} reached"
        elif existing_children + created >= run.max_children:
            refusal = f"max {run.max_children} children per agent reached"
        elif total + created >= run.max_agents:
            refusal = f"max {run.max_agents} agents per run reached"
        elif (
            not isinstance(files, list)
            or not files
            or not all(str(f) in manifest_files for f in files)
        ):
            refusal = "the requested scope is not a list of files in the snapshot"
        key = task_key(parent.step, request.lens or parent.lens, request.scope, run.snapshot_digest)
        if not refusal and Task.objects.filter(run=run, key=key).exists():
            refusal = "duplicate: a task with this scope and lens already exists"
        payload = {"scope": label, "why": request.why[:300]}
        events.append((EventType.SPAWN_REQUESTED, payload, parent))
        if refusal:
            events.append((EventType.SPAWN_REFUSED, {**payload, "reason": refusal}, parent))
            continue
        child = Task.objects.create(
            run=run,
            parent=parent,
            depth=parent.depth + 1,
            key=key,
            step=parent.step,
            role=parent.role,
            lens=request.lens or parent.lens,
            scope=request.scope,
            scope_label=label[:300],
            group=parent.group,
            why=request.why[:500],
            provider=parent.provider,
            model=parent.model,
            critical=False,
            # The run's rule for the role, not the parent's flag: an approved parent's is cleared.
            needs_approval=held,
            # Its allowance: what the spawner asked for (at most what it has left, at the
            # child's first call), else its share of the spawner's by the run's rule.
            budget_usd=request.budget_usd,
            allowance_weight=allowances.scope_weight(split, request.scope, sizes),
        )
        spawned.append(child)
        created += 1
        events.append(task_created(child))
    record_events(run, events)
    if spawned:
        transaction.on_commit(lambda: allowances.pool_spawned(run, parent, spawned))
    return created


def fail_task(task: Task, error: str) -> bool:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=task.run_id)
        fields, deltas = paid(task)
        won = task.move(
            Task.Move.FAIL,
            run_deltas=deltas,
            finished_at=timezone.now(),
            error=error[:2000],
            **fields,
            **span_fields(task),
        )
        if not won:
            return False
        record_event(
            run, EventType.TASK_FAILED, {"error": error[:500], "attempts": task.attempts}, task=task
        )
        allowances.close_after_commit(run.pk, [task.pk])
        playbook = run.resolved_playbook
        if run.status == Run.Status.RUNNING and (
            task.critical or playbook.failure.mode == "fail_fast"
        ):
            reason = (
                f"critical agent failed: {error[:200]}"
                if task.critical
                else f"an agent failed (fail-fast policy): {error[:200]}"
            )
            if run.transition(Run.Status.FAILED, reason):
                record_event(run, EventType.RUN_FAILED, {"reason": reason})
                end_run_trace_after_commit(run)
        schedule_dispatch(run.pk)
    return True


def budget_exhausted(task: Task, reason: str) -> None:
    """The budget cannot cover this task: skip it, stop the run's dispatch and spawning."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=task.run_id)
        fields, deltas = paid(task)
        if task.move(
            Task.Move.SKIP,
            only_from=[Task.Status.RUNNING, Task.Status.QUEUED, Task.Status.RETRYING],
            run_deltas=deltas,
            finished_at=timezone.now(),
            error=f"budget exhausted: {reason}"[:2000],
            **fields,
            **span_fields(task),
        ):
            record_event(run, EventType.TASK_SKIPPED, {"reason": "budget exhausted"}, task=task)
            allowances.close_after_commit(run.pk, [task.pk])
        # What the run spent so far: agents still running pay for their calls as they end, and
        # the run's reason is written again with the final figure when it finishes
        # (``store_report``).
        fresh = Run.objects.get(pk=run.pk)
        running = Task.objects.filter(run=run, status=Task.Status.RUNNING).count()
        used = spent_reason(fresh, in_flight=running)
        if run.transition(Run.Status.BUDGET_EXHAUSTED, used):
            payload = {"reason": f"{reason} {used.removeprefix('budget exhausted ')}"[:300]}
            record_event(run, EventType.BUDGET_EXHAUSTED, payload)
            # No later call of this run may reserve, even a smaller one that would still fit.
            transaction.on_commit(lambda: budget_for(run).exhaust())
        schedule_dispatch(run.pk)


def allowance_exhausted(task: Task, scope: str, reason: str) -> None:
    """Only the allowance of ``scope`` (this agent's subtree, or its group's) ran out: skip this
    agent with the reason; the run goes on (its other subtrees keep their own)."""
    with transaction.atomic():
        run = lock_run(task.run_id)
        fields, deltas = paid(task)
        if task.move(
            Task.Move.SKIP,
            only_from=[Task.Status.RUNNING, Task.Status.QUEUED, Task.Status.RETRYING],
            run_deltas=deltas,
            finished_at=timezone.now(),
            error=f"{allowances.SKIP_PREFIX}: {reason}"[:2000],
            **fields,
            **span_fields(task),
        ):
            payload = {"reason": f"{allowances.SKIP_PREFIX} ({scope})"}
            record_event(run, EventType.TASK_SKIPPED, payload, task=task)
            allowances.close_after_commit(run.pk, [task.pk])
        schedule_dispatch(run.pk)


def cancel_task(task: Task, reason: str) -> None:
    with transaction.atomic():
        run = lock_run(task.run_id)
        fields, deltas = paid(task)
        if task.move(
            Task.Move.CANCEL,
            only_from=[
                Task.Status.RUNNING,
                Task.Status.QUEUED,
                Task.Status.RETRYING,
                Task.Status.PENDING,
            ],
            run_deltas=deltas,
            finished_at=timezone.now(),
            error=reason[:2000],
            **fields,
            **span_fields(task),
        ):
            record_event(run, EventType.TASK_CANCELLED, {"reason": reason[:300]}, task=task)
        schedule_dispatch(run.pk)
