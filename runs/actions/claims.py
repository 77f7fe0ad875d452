"""An agent's claim: a worker process takes the agent (``Task.holder``) before it runs it.

A delivered agent message carries only the task's id. ``claim_agents`` reads the agents a
worker starts together and claims them in one transaction (``runs.actions.group_commit``
gathers them): one read of their rows and their runs, one UPDATE for all the agents won, one
seq allocation and INSERT of ``task.started`` events per run, instead of a read, a claim UPDATE
and an event per agent. Each agent gets back its row as claimed (and its run), so it reads
nothing more before it calls its model.

At-least-once is unchanged: the rows are read under the runs' locks and their own (the one lock
order: runs, then their tasks; SQLite's IMMEDIATE transaction serializes writers), so the
decision made on them holds until commit: a second delivery of an agent, even in the same
batch, loses the claim, and a running agent is taken over only when its holder is gone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from harness_site import liveness
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_events
from runs.models import Run, Task
from runs.models.task import LIFECYCLE

# The claim's statuses from the lifecycle table; taking over a running agent also needs its
# holder's lease to have run out (or its holder to be gone).
CLAIMABLE = frozenset(LIFECYCLE[Task.Move.CLAIM][0] - {Task.Status.RUNNING})
# A stopped run starts nothing more: its agent stops it instead (outcomes.cancel_task, or
# budget_exhausted), unclaimed.
STOPPED = frozenset({Run.Status.CANCELLED, Run.Status.FAILED, Run.Status.BUDGET_EXHAUSTED})


@dataclass
class Claim:
    """What one delivery found. ``task`` is None when the row is gone; otherwise it carries its
    run (``task.run``) and its parent's span id (``task.parent_span``). ``won``: this delivery
    holds the agent now. ``fresh``: no earlier try started it (no stored calls to replay).
    ``stopped``: the run is stopped; the agent was not claimed and must be stopped too."""

    task: Task | None
    won: bool = False
    fresh: bool = False
    stopped: bool = False


def claim_agents(task_ids: Sequence[int]) -> list[Claim]:
    """Claim the agents ``task_ids`` (one per delivery, duplicates allowed) in one transaction;
    one ``Claim`` per id, in order."""
    # Asked before the transaction (no lock held while Redis answers): which holders of running
    # agents are gone. Only those may be taken over before their lease ends.
    seen = list(
        Task.objects.filter(pk__in=set(task_ids)).values_list("pk", "run_id", "status", "holder")
    )
    dead = _dead_holders({holder for _, _, status, holder in seen if status == "running"})
    dead_held = {pk: holder for pk, _, _, holder in seen if holder in dead}
    now = timezone.now()
    lease_before = now - timedelta(seconds=settings.HARNESS_AGENT_LEASE_S)
    me = liveness.me()
    claims: list[Claim] = []
    with transaction.atomic():
        runs = {
            run.pk: run
            for run in Run.objects.select_for_update()
            .filter(pk__in={run_id for _, run_id, _, _ in seen})
            .order_by("pk")
        }
        rows = {
            task.pk: task
            for task in Task.objects.select_for_update(of=("self",))
            .annotate(parent_span=F("parent__span_id"))
            .filter(pk__in=set(task_ids))
            .order_by("pk")
        }
        won: list[int] = []
        for task_id in task_ids:
            row = rows.get(task_id)
            if row is None or row.run_id not in runs:
                claims.append(Claim(None))
                continue
            # Each delivery its own objects (the agents run on their own threads), as the row
            # was read: a second delivery of an agent won in this batch sees it as it was, and
            # loses (it goes away, as when the first delivery's claim had committed first).
            task = copy.copy(row)
            task.run = copy.copy(runs[row.run_id])
            if task.is_terminal:
                claims.append(Claim(task))
            elif task.run.status in STOPPED:
                claims.append(Claim(task, stopped=True))
            elif row.pk not in won and _claimable(row, lease_before, dead_held.get(row.pk)):
                claims.append(Claim(task, won=True, fresh=row.started_at is None))
                won.append(row.pk)
            else:
                claims.append(Claim(task))
        if won:
            claimed = Task.objects.filter(pk__in=won).update(
                status=Task.Status.RUNNING,
                attempts=F("attempts") + 1,
                started_at=Coalesce(F("started_at"), now),
                heartbeat_at=now,
                holder=me,
                retry_at=None,
            )
            if claimed != len(won):  # the locks make this impossible; fail the batch if not
                raise RuntimeError(f"claimed {claimed} of {len(won)} agents")
        started: dict[int, list[EventItem]] = {}
        for claim in claims:
            if claim.won and claim.task is not None:
                _as_claimed(claim.task, now, me)
                event = (EventType.TASK_STARTED, {"attempt": claim.task.attempts}, claim.task)
                started.setdefault(claim.task.run_id, []).append(event)
        for run_id, events in started.items():
            record_events(runs[run_id], events)
    return claims


def _claimable(row: Task, lease_before: datetime, dead_holder: str | None) -> bool:
    if row.status in CLAIMABLE:
        return True
    if row.status != Task.Status.RUNNING:
        return False
    if not row.holder or row.heartbeat_at is None or row.heartbeat_at < lease_before:
        return True
    # Only from that same dead holder: a new one may have taken it meanwhile.
    return dead_holder is not None and row.holder == dead_holder


def _as_claimed(task: Task, now: datetime, me: str) -> None:
    """The fields the claim's UPDATE wrote, on the object (attempts counted once per object)."""
    task.status = Task.Status.RUNNING
    task.attempts += 1
    task.started_at = task.started_at or now
    task.heartbeat_at = now
    task.holder = me
    task.retry_at = None


def _dead_holders(holders: set[str]) -> set[str]:
    try:
        return liveness.dead(holders)
    except redis.RedisError:  # cannot tell: presume them alive (the sweeper asks again)
        return set()


def claim_tasks(tasks: Sequence[Task]) -> list[bool]:
    """``claim_agents`` for tasks already read: True for each one this call won, whose object
    then holds the claimed fields."""
    claims = claim_agents([task.pk for task in tasks])
    for task, claim in zip(tasks, claims, strict=True):
        if claim.won and claim.task is not None:
            for field in ("status", "attempts", "started_at", "heartbeat_at", "holder", "retry_at"):
                setattr(task, field, getattr(claim.task, field))
    return [claim.won for claim in claims]


def claim_task(task: Task) -> bool:
    """Take the agent for this worker process (``Task.holder``): queued or retrying, or running
    under a holder that is gone (its process stopped refreshing its liveness key), was released
    by the sweeper's takeover, or whose heartbeat is older than the lease. True only for the one
    worker that won; ``task`` is refreshed then."""
    return claim_tasks([task])[0]
