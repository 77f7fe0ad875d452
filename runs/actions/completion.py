"""An agent's success: its findings and spawn requests stored and the agent marked succeeded,
all or nothing — for one agent or for a batch of them in one transaction.

A worker process ends agents by the hundred a second. Each one's outcome used to be its own
transaction holding the run's row: a lock, an aggregate of its calls, a counter UPDATE, a seq
allocation, an INSERT of findings and one of events, a hand-over query. ``complete_tasks``
does the same for many agents at once: the run's lock once, one aggregate over every agent's
calls, one conditional UPDATE per agent (the only per-agent statement, so a redelivered agent
still loses to the one that won), one UPDATE of the run's counters and totals, one INSERT of
findings, one seq allocation and INSERT of events, one hand-over query for every slot freed.
``runs.actions.group_commit`` gathers the batches in a worker process; elsewhere (a command, a
test running the worker in-process) a batch is one agent, in the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from opentelemetry.context import Context, attach, detach

from agents.aggregation.stages import OUTPUT_CAP_RULE
from agents.contract import AgentResult
from agents.playbooks import Playbook
from runs import allowances
from runs.actions import adaptive, enqueue
from runs.actions.dispatch import hand_over_slots, schedule_dispatch
from runs.actions.escalation import after_success
from runs.actions.outcomes import findings_of, lock_run, span_fields, spawn_children
from runs.actions.paid import NOTHING_PAID, paid_many
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_events
from runs.models import Finding, Run, Task


@dataclass(frozen=True)
class Completion:
    """One agent's successful result, waiting to be stored."""

    task: Task
    result: AgentResult
    playbook: Playbook
    # The agent's trace context: the messages its outcome sends (the next agents, a dispatch)
    # carry it, also when a committer thread stores the outcome.
    context: Context | None = None


def complete_task(task: Task, result: AgentResult, playbook: Playbook) -> bool:
    """Store one agent's success. False when another delivery already completed it."""
    return complete_tasks([Completion(task, result, playbook)])[0]


def complete_tasks(batch: list[Completion]) -> list[bool]:
    """Store every agent's success in one transaction; for each, True if this call completed
    it, False when another delivery already had (its findings and spawns are then not stored
    again)."""
    won: list[bool] = []
    with transaction.atomic():
        # The one lock order: runs (by id), then their tasks.
        runs = {run_id: lock_run(run_id) for run_id in sorted({c.task.run_id for c in batch})}
        paid = paid_many([c.task for c in batch])
        counters: dict[int, dict[str, int]] = {}
        totals: dict[int, dict[str, Any]] = defaultdict(dict)
        events: dict[int, list[EventItem]] = defaultdict(list)
        findings: list[Finding] = []
        freed: dict[int, int] = defaultdict(int)
        finished_groups: dict[int, set[str]] = defaultdict(set)
        finished: dict[int, list[int]] = defaultdict(list)
        contexts: dict[int, Context] = {}
        for item in batch:
            task, output = item.task, item.result.output
            run = runs[task.run_id]
            fields, run_totals = paid.get(task.pk, NOTHING_PAID)
            found = findings_of(run, task, output.findings)
            moved = Task.move_many(
                [task],
                Task.Move.SUCCEED,
                defer_counters=counters,
                finished_at=timezone.now(),
                **fields,
                summary=output.summary,
                output={
                    "data": output.data,
                    "model": item.result.model,
                    "provider": item.result.provider,
                },
                error="",
                **span_fields(task),
            )
            won.append(bool(moved))
            if not moved:
                continue
            freed[run.pk] += 1
            finished_groups[run.pk].add(task.group)
            finished[run.pk].append(task.pk)
            if item.context is not None:
                contexts.setdefault(run.pk, item.context)
            findings += found
            # The run's count is what its report counts: an output-limit note is not a finding.
            counted = sum(f.rule != OUTPUT_CAP_RULE for f in found)
            added = {**run_totals, "findings_count": counted}
            for name, value in added.items():
                totals[run.pk][name] = totals[run.pk].get(name, 0) + value
            children = 0
            if output.spawn:
                # Spawning reads the run's limits and status as of now, under its lock.
                fresh = Run.objects.get(pk=run.pk)
                children = spawn_children(fresh, task, item.playbook, output.spawn)
            # Tiered models: a breadth agent's items to a depth agent, or a depth agent's verdicts.
            depth, tier_events = after_success(run.pk, task, item.playbook, found, output.data)
            events[run.pk] += tier_events
            children += depth
            if children:
                bucket = counters.setdefault(run.pk, {})
                bucket["tasks_total"] = bucket.get("tasks_total", 0) + children
            events[run.pk] += [
                (
                    EventType.FINDING_ADDED,
                    {"title": f.title[:120], "severity": f.severity, "location": f.location},
                    task,
                )
                for f in found
            ]
            events[run.pk].append(
                (
                    EventType.TASK_SUCCEEDED,
                    {
                        "tokens": {"input": fields["tokens_in"], "output": fields["tokens_out"]},
                        "cost_usd": str(fields["cost_usd"]),
                        "findings": len(found),
                        "children": children,
                    },
                    task,
                )
            )
        Finding.objects.bulk_create(findings, ignore_conflicts=True)
        for run_id, run in runs.items():
            changes: dict[str, Any] = {
                name: F(name) + value
                for name, value in {**totals[run_id], **counters.get(run_id, {})}.items()
                if value
            }
            if changes:
                Run.objects.filter(pk=run_id).update(**changes)
            if not freed[run_id]:
                continue
            # An adaptive run's group whose last agent just finished gets its next wave (or
            # stops) now, so the slots freed below can go to the new agents.
            adaptive.decide_groups(run, finished_groups[run_id])
            handed: list[int] = []
            look = True
            if run.status == Run.Status.RUNNING:
                handed, look = hand_over_slots(run, events[run_id], freed[run_id])
            record_events(run, events[run_id])
            # Subtrees that are over now give their leftover back (after commit: their state).
            allowances.close_after_commit(run_id, finished[run_id])
            token = attach(contexts[run_id]) if run_id in contexts else None
            try:
                if look:
                    schedule_dispatch(run_id)
                enqueue.agents_after_commit(handed)
            finally:
                if token is not None:
                    detach(token)
    return won
