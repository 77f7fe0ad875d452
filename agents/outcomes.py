"""How an agent ends: succeeded (findings and spawn requests stored), failed, skipped for
budget, or cancelled. Each is one transaction with its events, like every engine change; the
next dispatch is scheduled after commit."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from agents import engine
from agents.decompose import scope_label, task_key
from agents.playbooks import Playbook
from agents.contract import AgentResult, SpawnOut
from runs.events import record_event, record_events
from runs.models import Finding, Run, Task


def finding_fingerprint(lens: str, rule: str, path: str, line: int | None, title: str) -> str:
    raw = "\x1f".join([lens, rule, path, str(line or ""), title.strip().lower()])
    return hashlib.sha256(raw.encode()).hexdigest()


def complete_task(task: Task, result: AgentResult, playbook: Playbook) -> bool:
    """Store the agent's findings and spawn requests and mark it succeeded — all or nothing.
    Returns False when another delivery already completed it."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=task.run_id)
        totals = task.steps.aggregate(
            tin=Sum("tokens_in"),
            tout=Sum("tokens_out"),
            cost=Sum("cost_usd"),
            unpriced=Count("id", filter=Q(unpriced=True)),
            model_s=Sum("seconds", filter=Q(kind="chat")),
            tool_s=Sum("seconds", filter=Q(kind="tool")),
        )
        tin, tout = totals["tin"] or 0, totals["tout"] or 0
        cost = totals["cost"] or Decimal(0)
        output = result.output
        won = task.move(
            Task.Status.SUCCEEDED,
            allowed_from=[Task.Status.RUNNING],
            finished_at=timezone.now(),
            tokens_in=tin,
            tokens_out=tout,
            cost_usd=cost,
            unpriced=bool(totals["unpriced"]),
            model_seconds=totals["model_s"] or 0.0,
            tool_seconds=totals["tool_s"] or 0.0,
            summary=output.summary,
            output={"data": output.data, "model": result.model, "provider": result.provider},
            error="",
        )
        if not won:
            return False
        findings = _findings(run, task, output.findings)
        Finding.objects.bulk_create(findings, ignore_conflicts=True)
        children = _spawn(run, task, playbook, output.spawn)
        Run.objects.filter(pk=run.pk).update(
            tokens_in=F("tokens_in") + tin,
            tokens_out=F("tokens_out") + tout,
            cost_usd=F("cost_usd") + cost,
            unpriced_calls=F("unpriced_calls") + (totals["unpriced"] or 0),
            tasks_done=F("tasks_done") + 1,
            findings_count=F("findings_count") + len(findings),
            tasks_total=F("tasks_total") + children,
        )
        events: list[tuple[str, dict[str, Any], Task | None]] = [
            (
                "finding.added",
                {"title": f.title[:120], "severity": f.severity, "location": f.location},
                task,
            )
            for f in findings
        ]
        events.append(
            (
                "task.succeeded",
                {
                    "tokens": {"input": tin, "output": tout},
                    "cost_usd": str(cost),
                    "findings": len(findings),
                    "children": children,
                },
                task,
            )
        )
        record_events(run, events)
        engine._schedule_dispatch(run.pk)
    return True


def _findings(run: Run, task: Task, outs: Iterable[Any]) -> list[Finding]:
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
                fingerprint=fingerprint,
            )
        )
    return findings


def _spawn(run: Run, parent: Task, playbook: Playbook, requests: list[SpawnOut]) -> int:
    """Create the children an agent asked for, within depth, fan-out and total limits, and
    refuse duplicates. Every request ends as an event, accepted or refused."""
    if not requests:
        return 0
    spec = playbook.roles.get(parent.role)
    from agents.snapshot import open_snapshot

    manifest_files = open_snapshot(run.snapshot_digest).manifest.files
    total = Task.objects.filter(run=run).count()
    existing_children = Task.objects.filter(parent=parent).count()
    created = 0
    events: list[tuple[str, dict[str, Any], Task | None]] = []
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
        events.append(("spawn.requested", payload, parent))
        if refusal:
            events.append(("spawn.refused", {**payload, "reason": refusal}, parent))
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
            why=request.why[:500],
            provider=parent.provider,
            model=parent.model,
            critical=False,
            needs_approval=parent.needs_approval,
        )
        created += 1
        events.append(
            (
                "task.created",
                {
                    "key": key[:12],
                    "step": child.step,
                    "lens": child.lens,
                    "scope": label,
                    "why": child.why,
                    "parent": parent.pk,
                },
                child,
            )
        )
    record_events(run, events)
    return created


def fail_task(task: Task, error: str, *, from_status: list[str] | None = None) -> bool:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=task.run_id)
        won = task.move(
            Task.Status.FAILED,
            allowed_from=from_status
            or [Task.Status.RUNNING, Task.Status.QUEUED, Task.Status.RETRYING],
            finished_at=timezone.now(),
            error=error[:2000],
        )
        if not won:
            return False
        Run.objects.filter(pk=run.pk).update(tasks_failed=F("tasks_failed") + 1)
        record_event(
            run, "task.failed", {"error": error[:500], "attempts": task.attempts}, task=task
        )
        playbook = Playbook.from_config(run.config)
        if run.status == Run.Status.RUNNING and (
            task.critical or playbook.failure.mode == "fail_fast"
        ):
            reason = (
                f"critical agent failed: {error[:200]}"
                if task.critical
                else f"an agent failed (fail-fast policy): {error[:200]}"
            )
            if run.transition(Run.Status.FAILED, reason):
                record_event(run, "run.failed", {"reason": reason})
        engine._schedule_dispatch(run.pk)
    return True


def budget_exhausted(task: Task, reason: str) -> None:
    """The budget cannot cover this task: skip it, stop the run's dispatch and spawning."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=task.run_id)
        if task.move(
            Task.Status.SKIPPED,
            allowed_from=[Task.Status.RUNNING, Task.Status.QUEUED, Task.Status.RETRYING],
            finished_at=timezone.now(),
            error=f"budget exhausted: {reason}"[:2000],
        ):
            Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + 1)
            record_event(run, "task.skipped", {"reason": "budget exhausted"}, task=task)
        if run.transition(Run.Status.BUDGET_EXHAUSTED, "budget exhausted"):
            record_event(run, "budget.exhausted", {"reason": reason[:300]})
            from agents.runtime import budget_for

            # No later call of this run may reserve, even a smaller one that would still fit.
            transaction.on_commit(lambda: budget_for(run).exhaust())
        engine._schedule_dispatch(run.pk)


def cancel_task(task: Task, reason: str) -> None:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=task.run_id)
        if task.move(
            Task.Status.CANCELLED,
            allowed_from=[
                Task.Status.RUNNING,
                Task.Status.QUEUED,
                Task.Status.RETRYING,
                Task.Status.PENDING,
            ],
            finished_at=timezone.now(),
            error=reason[:2000],
        ):
            Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + 1)
            record_event(run, "task.cancelled", {"reason": reason[:300]}, task=task)
        engine._schedule_dispatch(run.pk)
