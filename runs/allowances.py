"""Subtree budgets of a run: who gets which slice of it (``agents.budget_scopes``).

The run's option ``budget_split`` (``none``, ``equal``, ``size``) decides: at planning each
planner group (a folder of an audit, a document of a synthesis, a voter of an ensemble) is
carved its slice of the run's budget, and each agent of a group its share of the group's at its
first model call; a spawned agent gets the budget its spawner asked for (at most what the
spawner has left), else its share of the spawner's by the same rule. Every allowance is written
to the log (``budget.allowance``) and on the task; what a finished subtree did not use goes back
to its parent (``budget.returned``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum

from agents.budget import MICRO_USD, Budget, Carve, usd_to_micro
from agents.budget_scopes import (
    DEFAULT_SPLIT,
    SPLITS,
    Scopes,
    group_scope,
    size_weight,
    task_scope,
)
from harness_site.redis_client import get_redis
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem, record_event, record_events
from runs.models import Run, Step, Task

__all__ = ["DEFAULT_SPLIT", "SPLITS"]

OPTION = "budget_split"
SKIP_PREFIX = "allowance exhausted"


def split_of(run: Run) -> str:
    """The run's rule; a run launched before the option existed has none."""
    return str((run.config.get("options") or {}).get(OPTION, "none"))


def scopes_for(run: Run) -> Scopes:
    # The run's budget as ``runs.run_budget.budget_for`` names it (which rebuilds through here).
    return Scopes(Budget(get_redis(), run.uid.hex, key_prefix=settings.HARNESS_REDIS_PREFIX))


def _usd(micro: int) -> Decimal | None:
    return None if micro < 0 else (Decimal(micro) / MICRO_USD).quantize(Decimal("0.000001"))


def scope_weight(split: str, scope: dict[str, Any], sizes: dict[str, int]) -> int:
    """A task's weight in its parent's pool: 1 (equal) or the KiB it reads (size); 0 (none)."""
    if split == "equal":
        return 1
    if split != "size":
        return 0
    paths = [str(p) for p in scope.get("files") or []]
    if not paths and scope.get("document"):
        paths = [str(scope["document"])]
    return size_weight(sum(sizes.get(p, 0) for p in paths))


def chain_of(task: Task) -> list[str]:
    """The scopes a call of ``task`` is checked against: its own, its spawners', then its
    planner group's (when the run splits its budget)."""
    chain = [task_scope(task.pk)]
    node: Any = task
    while node.parent_id is not None:
        chain.append(task_scope(node.parent_id))
        node = Task.objects.only("id", "parent_id", "group").get(pk=node.parent_id)
    if split_of(task.run) != "none" and node.group and node.group in task.run.allowances:
        chain.append(group_scope(node.group))
    return chain


def carve_of(task: Task) -> Carve:
    """How ``task``'s allowance is cut at its first call."""
    if task.budget_usd is not None:
        return Carve("fixed", micro_usd=usd_to_micro(float(task.budget_usd)))
    if task.allowance_weight and split_of(task.run) != "none":
        return Carve("share", weight=int(task.allowance_weight))
    return Carve("none")


def scope_words(scope: str, own_task: int | None = None) -> str:
    """A scope in words: "group web/app", "this agent", "agent 12" (a spawner)."""
    if scope.startswith("g:"):
        return f"group {scope.removeprefix('g:') or '(root)'}"
    if own_task is not None and scope == task_scope(own_task):
        return "this agent"
    return f"agent {scope.removeprefix('t')}"


def _label(scope: str, task: Task | None) -> str:
    if task is not None:
        return task.scope_label or task.key[:12]
    return scope.removeprefix("g:") or "(root)"


def plan_groups(run: Run, tasks: Iterable[Task]) -> list[EventItem]:
    """Carve each planner group's slice of the run's budget (idempotent: a re-plan keeps the
    slices) and return the ``budget.allowance`` events; writes ``Run.allowances``. Groups share
    the run with its ungrouped agents (a final synthesis…), which keep their share uncarved."""
    split = split_of(run)
    if split == "none":
        return []
    members: dict[str, int] = defaultdict(int)
    ungrouped = 0
    for task in tasks:
        if task.group and task.allowance_weight:
            members[task.group] += int(task.allowance_weight)
        else:
            ungrouped += size_weight(0) if split == "size" else 1
    if not members:
        return []
    weights = {g: (1 if split == "equal" else w) for g, w in members.items()}
    rest = (1 if ungrouped else 0) if split == "equal" else ungrouped
    scopes = scopes_for(run)
    scopes.budget.client.hsetnx(scopes.budget.keys[0], "w", sum(weights.values()) + rest)
    allowances: dict[str, Any] = {}
    events: list[EventItem] = []
    for group in sorted(weights):
        micro, tokens, _ = scopes.carve_share(
            group_scope(group), weights[group], pool=members[group]
        )
        usd = _usd(micro)
        allowances[group] = {
            "usd": None if usd is None else str(usd),
            "tokens": None if tokens < 0 else tokens,
            "weight": weights[group],
        }
        payload = {
            "scope": group_scope(group),
            "label": group,
            "parent": "",
            "usd": allowances[group]["usd"],
            "tokens": allowances[group]["tokens"],
        }
        events.append((EventType.BUDGET_ALLOWANCE, payload, None))
    Run.objects.filter(pk=run.pk).update(allowances=allowances)
    run.allowances = allowances
    return events


def record_carved(task: Task, chain: list[str]) -> Decimal | None:
    """The agent's first call carved its allowance: write it on the task and in the log (once:
    a re-sent agent finds it written). Returns the allowance in USD (None: no limit)."""
    state = scopes_for(task.run).states([chain[0]]).get(chain[0])
    if state is None:
        return None
    usd = None if state.allowance_usd is None else Decimal(str(state.allowance_usd))
    tokens = state.allowance_tokens
    with transaction.atomic():
        if Task.objects.filter(pk=task.pk, allowance_usd__isnull=True).update(
            allowance_usd=usd, allowance_tokens=tokens
        ) and (usd is not None or tokens is not None):
            payload = {
                "scope": chain[0],
                "label": _label(chain[0], task),
                "parent": chain[1] if len(chain) > 1 else "",
                "usd": None if usd is None else str(usd),
                "tokens": tokens,
            }
            record_event(Run(pk=task.run_id), EventType.BUDGET_ALLOWANCE, payload, task=task)
    task.allowance_usd, task.allowance_tokens = usd, tokens
    return usd


def pool_spawned(run: Run, parent: Task, children: list[Task]) -> None:
    """Spawned children that take a share of their spawner's allowance: add their weights to
    its pool, so each carves its share at its first call. After commit (the children exist)."""
    weight = sum(int(c.allowance_weight) for c in children if c.budget_usd is None)
    if weight and split_of(run) != "none":
        scopes_for(run).add_pool(task_scope(parent.pk), weight)


def close_finished(run_id: int, task_ids: Iterable[int]) -> None:
    """Give back what finished subtrees did not use: a task whose own work and every
    descendant's are over closes its scope, then its spawner is looked at, up to its group
    (closed once every agent of the group is over). Each gift back is a ``budget.returned``."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if split_of(run) == "none" and not run.tasks.filter(budget_usd__isnull=False).exists():
        return  # no allowances in this run: nothing to give back
    scopes = scopes_for(run)
    terminal = Task.Status.terminal()
    events: list[EventItem] = []
    seen: set[int] = set()
    groups: set[str] = set()
    for task_id in task_ids:
        node = Task.objects.filter(pk=task_id).first()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            if node.status not in terminal or node.children.exclude(status__in=terminal).exists():
                break
            parent = task_scope(node.parent_id) if node.parent_id else None
            if parent is None and node.group in run.allowances and split_of(run) != "none":
                parent = group_scope(node.group)
                groups.add(node.group)
            back_u, back_t = scopes.close(task_scope(node.pk), parent)
            if back_u or back_t:
                events.append(_returned(task_scope(node.pk), node, parent or "", back_u, back_t))
            node = node.parent
    for group in sorted(groups):
        if not Task.objects.filter(run=run, group=group).exclude(status__in=terminal).exists():
            back_u, back_t = scopes.close(group_scope(group), None)
            if back_u or back_t:
                events.append(_returned(group_scope(group), None, "", back_u, back_t))
    if events:
        with transaction.atomic():
            record_events(Run.objects.select_for_update().get(pk=run.pk), events)


def close_all(run_id: int) -> None:
    """Every agent of the run is over: close every scope left open, deepest first (agents a
    bulk move skipped never walked up to their spawners), then the groups."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if split_of(run) == "none" and not run.tasks.filter(budget_usd__isnull=False).exists():
        return  # no allowances in this run
    scopes = scopes_for(run)
    events: list[EventItem] = []
    for task in run.tasks.order_by("-depth", "pk"):
        parent = task_scope(task.parent_id) if task.parent_id else None
        if parent is None and task.group in run.allowances:
            parent = group_scope(task.group)
        back_u, back_t = scopes.close(task_scope(task.pk), parent)
        if back_u or back_t:
            events.append(_returned(task_scope(task.pk), task, parent or "", back_u, back_t))
    for group in sorted(run.allowances):
        back_u, back_t = scopes.close(group_scope(group), None)
        if back_u or back_t:
            events.append(_returned(group_scope(group), None, "", back_u, back_t))
    if events:
        with transaction.atomic():
            record_events(Run.objects.select_for_update().get(pk=run.pk), events)


def _returned(scope: str, task: Task | None, parent: str, micro: int, tokens: int) -> EventItem:
    payload = {
        "scope": scope,
        "label": _label(scope, task),
        "parent": parent,
        "usd": str(_usd(micro)),
        "tokens": tokens,
    }
    return EventType.BUDGET_RETURNED, payload, task


def close_after_commit(run_id: int, task_ids: list[int]) -> None:
    transaction.on_commit(lambda: close_finished(run_id, task_ids))


def _micro(value: Decimal | str | None) -> int:
    return -1 if value is None else usd_to_micro(float(value))


def rebuild_scopes(run: Run) -> None:
    """Write the run's scopes back from the database after its budget state was rebuilt
    (Redis lost it): each group's and each agent's allowance, what its subtree spent (its
    stored calls), what it holds for open children and the weights still to carve. Agents
    whose allowance was recorded keep it: a re-sent agent is never carved a second one."""
    if split_of(run) == "none" and not run.tasks.filter(budget_usd__isnull=False).exists():
        return
    rows: list[dict[str, Any]] = [
        dict(r)
        for r in run.tasks.values(
            "id",
            "parent_id",
            "group",
            "status",
            "started_at",
            "allowance_usd",
            "allowance_tokens",
            "allowance_weight",
            "budget_usd",
        )
    ]
    spent = {
        r["task_id"]: (usd_to_micro(float(r["usd"] or 0)), int(r["tokens"] or 0))
        for r in Step.objects.filter(task__run=run, kind="chat")
        .values("task_id")
        .annotate(usd=Sum("cost_usd"), tokens=Sum(F("tokens_in") + F("tokens_out")))
    }
    children: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        children[r["parent_id"]].append(r)
    terminal = set(Task.Status.terminal())

    def subtree(r: dict[str, Any]) -> tuple[int, int, bool]:
        u, t = spent.get(r["id"], (0, 0))
        over = r["status"] in terminal
        for c in children[r["id"]]:
            cu, ct, cover = subtree(c)
            u, t, over = u + cu, t + ct, over and cover
        return u, t, over

    def hold(limit: int, used: int, over: bool) -> int:
        return 0 if limit < 0 or over else max(0, limit - used)

    def scope_row(
        lu: int, lt: int, members: list[dict[str, Any]], own: tuple[int, int]
    ) -> tuple[dict[str, int], bool]:
        su, st, ku, kt, w, over = own[0], own[1], 0, 0, 0, True
        for c in members:
            cu, ct, cover = subtree(c)
            su, st, over = su + cu, st + ct, over and cover
            if c["started_at"] is None and c["budget_usd"] is None:
                w += int(c["allowance_weight"])
            ku += hold(_micro(c["allowance_usd"]), cu, cover)
            kt += hold(-1 if c["allowance_tokens"] is None else c["allowance_tokens"], ct, cover)
        return {"lu": lu, "lt": lt, "su": su, "st": st, "ku": ku, "kt": kt, "w": w}, over

    out: list[tuple[str, dict[str, int]]] = []
    for r in rows:
        if r["allowance_usd"] is None and r["allowance_tokens"] is None:
            continue
        lt = -1 if r["allowance_tokens"] is None else int(r["allowance_tokens"])
        fields, over = scope_row(
            _micro(r["allowance_usd"]), lt, children[r["id"]], spent.get(r["id"], (0, 0))
        )
        over = over and r["status"] in terminal
        out.append((task_scope(r["id"]), {**fields, "hu": 1, "ht": 1, "c": int(over)}))
    root_ku = root_kt = 0
    for group, slice_ in run.allowances.items():
        members = [r for r in children[None] if r["group"] == group]
        lu, lt = _micro(slice_.get("usd")), slice_.get("tokens")
        lt = -1 if lt is None else int(lt)
        fields, over = scope_row(lu, lt, members, (0, 0))
        root_ku += hold(lu, fields["su"], over)
        root_kt += hold(lt, fields["st"], over)
        out.append((group_scope(group), {**fields, "hu": 1, "ht": 1, "c": int(over)}))
    scopes = scopes_for(run)
    scopes.rebuild(out)
    scopes.budget.client.hset(scopes.budget.keys[0], mapping={"ku": root_ku, "kt": root_kt})
