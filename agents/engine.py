"""State changes of the machine's side: plan, dispatch, complete, fail, spawn, finish.

Each function is one transaction that writes the change and its events together; Celery
enqueues happen only after commit. Every transition is a conditional UPDATE, so duplicate
deliveries and racing workers are harmless: exactly one caller wins each transition.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from agents.decompose import TaskSpec, scope_label, task_key
from agents.playbooks import Playbook
from agents.providers.base import AgentResult, SpawnOut
from runs.events import record_event, record_events
from runs.models import Approval, Finding, Run, Task

logger = logging.getLogger(__name__)

TERMINAL = Task.Status.terminal()
IN_FLIGHT = Task.Status.in_flight()
NOT_SUCCEEDED = [Task.Status.FAILED, Task.Status.SKIPPED, Task.Status.CANCELLED]


def _enqueue(task_ids: list[int]) -> None:
    from agents.tasks import run_agent

    for task_id in task_ids:
        run_agent.delay(task_id)


def _schedule_dispatch(run_id: int) -> None:
    from agents.tasks import dispatch_run

    transaction.on_commit(lambda: dispatch_run.delay(run_id))


# -- planning -----------------------------------------------------------------------------------
def create_planned_tasks(run: Run, playbook: Playbook, specs: list[TaskSpec]) -> int:
    """Create the planned root tasks (idempotent: a re-plan after a crash creates nothing new)
    and move the run to running. Returns the number of tasks created."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status != Run.Status.PLANNING:
            return 0
        existing = set(Task.objects.filter(run=run).values_list("key", flat=True))
        new = [s for s in specs if s.key not in existing]
        tasks = [_task_from_spec(run, playbook, spec) for spec in new]
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
        record_events(
            run,
            [
                (
                    "task.created",
                    {
                        "key": t.key[:12],
                        "step": t.step,
                        "lens": t.lens,
                        "scope": t.scope_label,
                        "why": t.why,
                        "parent": None,
                    },
                    by_key[t.key],
                )
                for t in tasks
            ],
        )
        run.transition(Run.Status.RUNNING)
        record_event(run, "run.running", {"tasks": len(by_key)})
        _schedule_dispatch(run.pk)
    return len(new)


def _task_from_spec(
    run: Run, playbook: Playbook, spec: TaskSpec, *, parent: Task | None = None
) -> Task:
    role = playbook.roles.get(spec.role) or next(iter(playbook.roles.values()))
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
        why=spec.why[:500],
        provider=role.provider or run.provider,
        model=role.model or run.model,
        critical=role.critical,
        needs_approval=role.needs_approval,
    )


# -- dispatch -----------------------------------------------------------------------------------
def dispatch(run_id: int) -> list[int]:
    """Pull-based dispatch: keep at most ``max_concurrency`` tasks of the run in flight.

    Runs under the run's row lock (SELECT … FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
    transactions serialize writers), so two dispatchers never both fill the same free slots.
    Returns the ids it queued.
    """
    queued: list[int] = []
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status in (Run.Status.BUDGET_EXHAUSTED, Run.Status.CANCELLED, Run.Status.FAILED):
            _stop_pending(run, reason=_stop_reason(run))
            _maybe_finish(run)
            return []
        if run.status != Run.Status.RUNNING:
            return []
        _skip_blocked(run)
        in_flight = Task.objects.filter(run=run, status__in=IN_FLIGHT).count()
        free = run.max_concurrency - in_flight
        if free > 0:
            ready = list(
                Task.objects.filter(run=run, status=Task.Status.PENDING)
                .exclude(
                    depends_on__status__in=[
                        *NOT_SUCCEEDED,
                        *IN_FLIGHT,
                        Task.Status.PENDING,
                        Task.Status.AWAITING_APPROVAL,
                    ]
                )
                .order_by("depth", "id")[:free]
            )
            events: list[tuple[str, dict[str, Any], Task | None]] = []
            now = timezone.now()
            for task in ready:
                if task.needs_approval:
                    if task.move(Task.Status.AWAITING_APPROVAL, allowed_from=[Task.Status.PENDING]):
                        Approval.objects.create(
                            run=run,
                            gate=Approval.Gate.TASK,
                            target_id=task.pk,
                            target_label=f"{task.step}/{task.lens} {task.scope_label}"[:300],
                        )
                        events.append(("approval.requested", {"gate": "task"}, task))
                    continue
                if task.move(Task.Status.QUEUED, allowed_from=[Task.Status.PENDING], queued_at=now):
                    queued.append(task.pk)
                    events.append(("task.queued", {}, task))
            record_events(run, events)
        if queued:
            transaction.on_commit(lambda: _enqueue(queued))
        _maybe_finish(run)
    return queued


def _stop_reason(run: Run) -> str:
    reasons: dict[str, str] = {
        Run.Status.BUDGET_EXHAUSTED: "budget exhausted",
        Run.Status.CANCELLED: "run cancelled",
        Run.Status.FAILED: "run failed",
    }
    return reasons.get(str(run.status), "run stopped")


def _stop_pending(run: Run, reason: str) -> int:
    """Skip (or cancel) every task that has not started. In-flight tasks finish on their own."""
    status = Task.Status.CANCELLED if run.status == Run.Status.CANCELLED else Task.Status.SKIPPED
    waiting = list(
        Task.objects.filter(
            run=run,
            status__in=[Task.Status.PENDING, Task.Status.QUEUED, Task.Status.AWAITING_APPROVAL],
        )
    )
    moved = [
        t
        for t in waiting
        if t.move(
            status,
            allowed_from=[Task.Status.PENDING, Task.Status.QUEUED, Task.Status.AWAITING_APPROVAL],
            error=reason,
            finished_at=timezone.now(),
        )
    ]
    if moved:
        Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + len(moved))
        record_events(run, [(f"task.{status}", {"reason": reason}, t) for t in moved])
    return len(moved)


def _skip_blocked(run: Run) -> None:
    blocked = list(
        Task.objects.filter(
            run=run, status=Task.Status.PENDING, depends_on__status__in=NOT_SUCCEEDED
        ).distinct()
    )
    moved = [
        t
        for t in blocked
        if t.move(
            Task.Status.SKIPPED,
            allowed_from=[Task.Status.PENDING],
            error="a task it depends on did not succeed",
            finished_at=timezone.now(),
        )
    ]
    if moved:
        Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + len(moved))
        record_events(
            run, [("task.skipped", {"reason": "dependency did not succeed"}, t) for t in moved]
        )


def _maybe_finish(run: Run) -> None:
    """When no task is left to run, apply the failure policy and start aggregation."""
    if Task.objects.filter(run=run).exclude(status__in=TERMINAL).exists():
        return
    run.refresh_from_db()
    if run.status == Run.Status.RUNNING:
        verdict = _policy_verdict(run)
        if verdict:
            if run.transition(Run.Status.FAILED, verdict):
                record_event(run, "run.failed", {"reason": verdict})
            return
        if run.transition(Run.Status.AGGREGATING):
            record_event(run, "run.aggregating", {})
            _schedule_aggregate(run.pk)
    elif run.status == Run.Status.BUDGET_EXHAUSTED and not run.reports.exists():
        _schedule_aggregate(run.pk)


def _schedule_aggregate(run_id: int) -> None:
    from agents.tasks import aggregate_run

    transaction.on_commit(lambda: aggregate_run.delay(run_id))


def _policy_verdict(run: Run) -> str:
    """Why the finished run fails under its playbook's failure policy ('' if it does not)."""
    playbook = Playbook.from_config(run.config)
    counts = Task.objects.filter(run=run).aggregate(
        ok=Count("id", filter=Q(status=Task.Status.SUCCEEDED)),
        critical_failed=Count("id", filter=Q(status=Task.Status.FAILED, critical=True)),
        failed=Count("id", filter=Q(status=Task.Status.FAILED)),
    )
    if counts["critical_failed"]:
        return "a critical agent failed"
    if playbook.failure.mode == "fail_fast" and counts["failed"]:
        return "an agent failed (fail-fast policy)"
    if playbook.failure.mode == "quorum" and counts["ok"] < playbook.failure.quorum:
        return f"only {counts['ok']} agents succeeded; the quorum is {playbook.failure.quorum}"
    if counts["ok"] == 0:
        return "no agent succeeded"
    return ""


# -- results ------------------------------------------------------------------------------------
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
        _schedule_dispatch(run.pk)
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
    from agents.snapshots import open_snapshot

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
        _schedule_dispatch(run.pk)
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
            transaction.on_commit(lambda: budget_for(run.pk).exhaust())
        _schedule_dispatch(run.pk)


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
        _schedule_dispatch(run.pk)
