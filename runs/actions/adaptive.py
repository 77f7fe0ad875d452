"""Adaptive fan-out's decisions (``agents.adaptive``): when every agent of a group has finished,
add its next wave of agents or stop it, and record why.

Called with the run's row lock held, inside the transaction of the change that finished the
group's last agent (an agent's success, ``runs.actions.completion``) and by every dispatch pass
(a failure, a skip, a crash between the two: ``runs.actions.dispatch``). A decision is the
``adaptive.decided`` event of its (group, wave), written with the agents it adds; under the lock
a second caller sees it and decides nothing, so two workers finishing a group's scouts at once,
a redelivered message or a re-run after a crash all leave one decision per wave.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import F, Q

from agents.adaptive import Seen, Unit, decide, is_adaptive, units_by_group
from agents.aggregation.stages import OUTPUT_CAP_RULE
from agents.planning import TaskSpec, full_plan
from agents.playbooks import REPORT_STEPS, Playbook
from agents.snapshot import open_snapshot
from runs.actions.new_tasks import task_created, task_from_spec
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_events
from runs.models import Event, Finding, Run, Task

TERMINAL = Task.Status.terminal()

# Per run (by UUID, as ``dispatch.has_dependencies``): whether it is adaptive, and its full plan
# as each group's chunks. Both never change once the run is planned; a long-lived worker sees
# many runs, so each cache is bounded.
_adaptive: dict[uuid.UUID, bool] = {}
_plans: dict[uuid.UUID, tuple[dict[str, list[Unit]], dict[str, TaskSpec]]] = {}
_CACHE_MAX = 1000


def run_is_adaptive(run: Run) -> bool:
    known = _adaptive.get(run.uid)
    if known is None:
        config = Run.objects.filter(pk=run.pk).values_list("config", flat=True).first() or {}
        known = is_adaptive(str(config.get("decomposition", "")), config.get("options") or {})
        if len(_adaptive) > _CACHE_MAX:
            _adaptive.clear()
        _adaptive[run.uid] = known
    return known


def _plan(run: Run, playbook: Playbook) -> tuple[dict[str, list[Unit]], dict[str, TaskSpec]]:
    cached = _plans.get(run.uid)
    if cached is None:
        snapshot = open_snapshot(run.snapshot_ref)
        specs = full_plan(playbook, snapshot.manifest.to_dict(), snapshot.read_text)
        cached = (units_by_group(specs), {s.key: s for s in specs})
        if len(_plans) > _CACHE_MAX // 10:
            _plans.clear()
        _plans[run.uid] = cached
    return cached


def decide_groups(run: Run, groups: set[str] | None = None) -> int:
    """Decide for every group (or those of ``groups``) whose agents have all finished and that
    has chunks left. The caller holds the run's row lock. Returns the agents added."""
    if not run_is_adaptive(run):
        return 0
    run = Run.objects.get(pk=run.pk)
    if run.status != Run.Status.RUNNING:
        return 0
    tasks = Task.objects.filter(run=run).exclude(step__in=REPORT_STEPS)
    if groups is not None:
        tasks = tasks.filter(group__in=groups)
    rows = list(tasks.values_list("id", "group", "status", "key", "parent_id"))
    open_groups = {g for _, g, status, _, _ in rows if status not in TERMINAL}
    settled = {g for _, g, _, _, _ in rows} - open_groups
    if not settled:
        return 0
    decided: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for payload in Event.objects.filter(run=run, type=EventType.ADAPTIVE_DECIDED).values_list(
        "payload", flat=True
    ):
        decided[payload["group"]].append(payload)
    playbook = run.resolved_playbook
    units, specs = _plan(run, playbook)
    existing = set(Task.objects.filter(run=run).values_list("key", flat=True))
    lenses = max(1, len(playbook.lenses))
    added = 0
    events: list[EventItem] = []
    for group in sorted(settled):
        history = sorted(decided[group], key=lambda p: p["wave"])
        if history and not history[-1]["added"]:
            continue  # stopped for good
        left = [u for u in units.get(group, []) if not set(u.keys) <= existing]
        if not left:
            continue  # read in full: nothing to decide
        ids = [(tid, parent) for tid, g, _, _, parent in rows if g == group]
        since = history[-1]["last_task"] if history else 0
        wave_ids = [tid for tid, _ in ids if tid > since]
        planned = sum(1 for tid, parent in ids if tid > since and parent is None)
        known, new = _findings(run, group, since)
        allowed = run.max_agents - run.tasks_total - added
        decision = decide(
            where=f"{group}/" if group else "(root)/",
            wave=len(history),
            last_agents=len(wave_ids),
            last_units=max(1, planned // lenses),
            known=known,
            new=new,
            units_left=len(left),
            lenses=lenses,
            agents_allowed=allowed,
            agents_affordable=_affordable(run, added),
        )
        why = f"wave {len(history) + 1}: {decision.reason}"
        created = _add_wave(run, playbook, specs, left[: decision.units], why)
        existing.update(t.key for t in created)
        added += len(created)
        events.extend(task_created(t) for t in created)
        payload = {
            "group": group,
            "wave": len(history),
            "added": len(created),
            "reason": decision.reason,
            "last_task": max(tid for tid, _ in ids),
            "found": decision.found,
            "repeated": decision.repeated,
        }
        events.append((EventType.ADAPTIVE_DECIDED, payload, None))
    if added:
        Run.objects.filter(pk=run.pk).update(tasks_total=F("tasks_total") + added)
    record_events(run, events)
    return added


def _findings(run: Run, group: str, since: int) -> tuple[list[Seen], list[Seen]]:
    """The group's findings before the wave decided on (known) and of that wave (new)."""
    known: list[Seen] = []
    new: list[Seen] = []
    rows = (
        Finding.objects.filter(run=run, task__group=group)
        .exclude(rule=OUTPUT_CAP_RULE)
        .order_by("id")
        .values_list("task_id", "rule", "severity", "title", "detail", "evidence", "path")
    )
    for task_id, rule, severity, title, detail, evidence, path in rows:
        # The quoted code says what a finding is about (a rule's title and detail read the same
        # for every place it fires); the path left out: the same flaw in a copy of a file is
        # the same thing said again.
        text = evidence.strip() or f"{title}. {detail}".replace(path or "\0", "")
        seen = Seen(task_id, rule, severity, text)
        (new if task_id > since else known).append(seen)
    return known, new


def _affordable(run: Run, added: int) -> int | None:
    """Agents the budget left pays for at the average finished agent's cost, after those
    running or waiting (None: no agent has cost anything yet)."""
    done = run.tasks_done + run.tasks_failed
    if not done:
        return None
    waiting = Task.objects.filter(run=run).exclude(Q(status__in=TERMINAL)).count() + added
    counts: list[int] = []
    if run.budget_usd is not None and run.cost_usd > 0:
        average = run.cost_usd / done
        counts.append(math.floor((Decimal(run.budget_usd) - run.cost_usd) / average) - waiting)
    tokens = run.tokens_in + run.tokens_out
    if run.budget_tokens and tokens:
        counts.append(math.floor((run.budget_tokens - tokens) / (tokens / done)) - waiting)
    return max(0, min(counts)) if counts else None


def _add_wave(
    run: Run, playbook: Playbook, specs: dict[str, TaskSpec], wave: list[Unit], why: str
) -> list[Task]:
    keys = [key for unit in wave for key in unit.keys]
    if not keys:
        return []
    tasks = [task_from_spec(run, playbook, specs[key]) for key in keys]
    for task in tasks:
        task.why = why[:500]
    Task.objects.bulk_create(tasks)
    return list(Task.objects.filter(run=run, key__in=keys).order_by("id"))
