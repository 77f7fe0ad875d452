"""Fragments of the run page, shared by the page view (first render) and the websocket consumer
(live re-renders). One partial per swap target; every fragment carries the run's ``data-seq``.

The consumer never re-renders the tree (see ``_tree_and_feed``): it sends the rows of the agents
whose events arrived since the last push and of the agents and groups above them (whose counts
moved), and new agents to append under their parent.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.context_processors import PermWrapper
from django.contrib.auth.models import User
from django.template.loader import render_to_string
from django.utils import timezone

from agents.contract import ProviderError
from agents.playbooks import REPORT_STEPS
from agents.providers.catalog import concurrency_cap
from harness_site.workers import worker_slots
from runs.eventlog.event_types import EventType
from runs.models import Event, Finding, Run, Task
from runs.pages import decisions
from runs.pages.events import labelled
from runs.pages.findings import load_ranked, ranked_ids, ranks_of
from runs.pages.run import charts, dashboard, finished, forecast, timeline
from runs.pages.run import tree as agent_tree
from runs.pages.run.tree import AgentTree
from runs.pages.tiers import tier_costs

EVENTS_IN_PAGE = 50
# Panels whose render is big (a lane per agent, up to 150): pushed at most this often per
# connection. The cost panel is not one of them: its size is bounded (top agents, per model),
# and it must go out with the counters, which show the same totals.
HEAVY_PANELS = {"run-timeline"}
HEAVY_INTERVAL = 1.0
FINDINGS_IN_PAGE = 50
# Past this many new agents in one push, the tree's first view is re-rendered instead.
APPEND_MAX = 50
_SEQ = re.compile(r' data-seq="\d+"')

# Fragment id → its partial in the run page. Each is swapped by id with hx-swap-oob="true".
PANELS = {
    "run-header": "runs/detail.html#header",
    "run-counters": "runs/detail.html#counters",
    "run-budget": "runs/detail.html#budget",
    "run-costs": "runs/detail.html#costs",
    "run-timeline": "runs/detail.html#timeline",
    "run-findings": "runs/detail.html#findings",
    "run-report": "runs/detail.html#report",
}


def run_context(run: Run, user: User, params: dict[str, str]) -> dict[str, Any]:
    """The run page's first render: every panel, the tree (as ``params`` open and search it)
    and the newest events; the websocket then sends what changes."""
    kept = finished.derived(run, lambda: derive(run))
    events = list(
        Event.objects.filter(run_id=run.pk).select_related("task").order_by("-seq")[:EVENTS_IN_PAGE]
    )
    return {
        **panel_context(run, kept.tasks, user, figures=kept.figures),
        **tree_context(run, kept.tasks, params, tree=kept.tree),
        "events": labelled(events),
    }


def derive(run: Run) -> finished.Derived:
    """The run's tasks and all that is computed from them alone (kept for a finished run)."""
    tasks = dashboard.load_tasks(run)
    figures = task_figures(run, tasks, timezone.now(), heavy=True)
    return finished.Derived(tasks, agent_tree.build_for(run, tasks), figures)


def task_figures(run: Run, tasks: list[Task], now: datetime, *, heavy: bool) -> dict[str, Any]:
    """The panels' figures that come from the run row and its tasks only: totals, budget, cost
    tables and charts, status counts, and (with ``heavy``) the timeline."""
    # One source for every figure of spend in this render: the tasks list, read in one query.
    # The run row's totals are written in the same transactions, but read in another statement
    # they can be a finished agent ahead of (or behind) the list.
    totals = dashboard.totals(tasks)
    budget = dashboard.budget(run, tasks, now, totals)
    by_agent = dashboard.cost_by_agent(tasks)
    by_model = dashboard.cost_by_model(tasks)
    heavy_context: dict[str, Any] = {}
    if heavy:
        waterfall = timeline.waterfall(run, tasks, now)
        series = timeline.concurrency_series(run, tasks, timeline.load_retry_waits(run), now)
        heavy_context = {
            "timeline": waterfall,
            "timeline_svg": charts.waterfall_svg(waterfall),
            "concurrency_series": series,
            "concurrency_svg": charts.concurrency_svg(series, waterfall.span),
        }
    return {
        "status_counts": dashboard.status_counts(tasks),
        "queue_wait": timeline.queue_wait(run, tasks, now),
        "totals": totals,
        "budget": budget,
        "forecast_checks": forecast.forecast_checks(run, tasks, budget),
        "gauge_svg": charts.gauge(budget),
        "cost_by_agent": by_agent,
        "cost_by_model": by_model,
        "agent_chart": charts.bar_chart(by_agent, metric="cost"),
        "token_chart": charts.bar_chart(
            dashboard.cost_by_agent(tasks, by="tokens"), metric="tokens"
        ),
        "model_chart": charts.bar_chart(by_model, metric="cost"),
        "tier_costs": tier_costs(run, tasks),
        **heavy_context,
    }


def panel_context(
    run: Run,
    tasks: list[Task],
    user: User,
    *,
    heavy: bool = True,
    figures: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the aggregate panels need, from the run row and one list of tasks (and their
    ``figures`` when already computed); without ``heavy``, not the timeline's (a live push that
    holds the timeline back skips its cost)."""
    now = timezone.now()
    if figures is None:
        figures = task_figures(run, tasks, now, heavy=heavy)
    report = run.reports.order_by("-version").first()
    ranks = ranks_of(report)
    findings = load_ranked(
        ranked_ids(Finding.objects.filter(run_id=run.pk), ranks)[:FINDINGS_IN_PAGE],
        ranks,
        Finding.objects.only(
            "id",
            "run_id",
            "task_id",
            "lens",
            "title",
            "severity",
            "confidence",
            "path",
            "line_start",
            "line_end",
            "created_at",
        ),
    )
    slots = worker_slots()
    counts = figures["status_counts"]
    pending_approval = None
    budget_gate = None
    if run.status == Run.Status.BUDGET_EXHAUSTED:
        budget_gate = run.approvals.filter(gate="budget", decision="pending").first()
    if report is not None and run.status == Run.Status.AWAITING_REVIEW:
        pending_approval = run.approvals.filter(gate="report", decision="pending").first()
    return {
        **figures,
        "run": run,
        "seq": run.last_seq,
        "perms": PermWrapper(user),
        "user": user,
        "concurrency": dashboard.concurrency(
            run,
            tasks,
            now,
            worker_slots=slots.total if slots.known else None,
            workers=slots.count if slots.known else None,
            provider_cap=_provider_cap(run.provider),
            counts=counts,
        ),
        "findings": findings,
        "report": report,
        "pending_approval": pending_approval,
        # What reviewers said about this version (a new version opens a new gate).
        "decision": decisions.report_decision(run, report),
        "changes_requested": decisions.changes_requested(run, report) if report else [],
        "budget_gate": budget_gate,
        "four_eyes": settings.HARNESS_FOUR_EYES,
    }


def _provider_cap(name: str) -> int | None:
    try:
        return concurrency_cap(name)
    except (ProviderError, KeyError, ValueError):  # a provider removed from the config since
        return None


def render_panel(name: str, context: dict[str, Any], *, oob: bool) -> str:
    return render_to_string(PANELS[name], {**context, "oob": oob})


def render_rows(tree: AgentTree, keys: list[str], context: dict[str, Any]) -> dict[str, str]:
    """The rows (``#task-{id}`` or ``#row-{group}``) of these nodes, by row id."""
    out: dict[str, str] = {}
    for key in keys:
        node = tree.nodes[key]
        if node.task is not None:
            html = render_to_string(
                "runs/detail.html#node-row",
                {
                    "task": node.task,
                    "sub": node.counts,
                    "seq": context["seq"],
                    "oob": False,
                    "has_children": bool(node.children),
                },
            )
            out[f"task-{node.task.pk}"] = html
        else:
            html = render_to_string("runs/detail.html#group-row", {**context, "node": node})
            out[f"row-{node.dom}"] = html
    return out


def render_events(events: list[Event], seq: int, *, replace: bool) -> str:
    """New events prepended to the feed, or (after a long gap) the feed replaced whole."""
    return render_to_string(
        "runs/detail.html#event-feed",
        {"events": labelled(events), "seq": seq, "oob": True, "replace": replace},
    )


def fingerprint(html: str) -> str:
    """Hash of a fragment without its seq, to skip sending what the page already shows."""
    return hashlib.blake2b(_SEQ.sub("", html).encode(), digest_size=12).hexdigest()


@dataclass
class LiveState:
    """What one websocket connection has pushed so far."""

    since: int = 0
    sent: dict[str, str] = field(default_factory=dict)
    heavy_at: float = 0.0
    # True when a heavy panel was held back: the consumer schedules one more push for it.
    heavy_pending: bool = False
    # The session's CSRF secret (from its cookie) so re-rendered action forms still post.
    csrf_token: str = ""


def render_update(
    run_id: int,
    user: User,
    state: LiveState,
    *,
    snapshot: bool,
    deltas: bool = True,
    now: float | None = None,
) -> str:
    """Every fragment whose data changed since ``state.since`` (all panels on a snapshot; with
    ``deltas`` also the tree rows and events of every event after ``state.since``).

    Reads ``last_seq`` first: anything read afterwards is at least that new, so tagging the
    fragments with it never makes the page claim more than it shows. A delta push ends with the
    ``#live-seq`` marker: the seq up to which the page's tree and feed are complete, which
    harness.js sends back on a reconnect so the catch-up skips what the page already has.
    """
    run = Run.objects.select_related("launched_by").get(pk=run_id)
    seq = run.last_seq
    figures = None
    if run.is_active:
        tasks = dashboard.load_tasks(run)
    else:  # a finished run: what a page's first render computed (``finished``)
        kept = finished.derived(run, lambda: derive(run))
        tasks, figures = kept.tasks, kept.figures
    parts: list[str] = []
    now = time.monotonic() if now is None else now
    heavy_due = snapshot or now - state.heavy_at >= HEAVY_INTERVAL
    context = {
        **panel_context(run, tasks, user, heavy=heavy_due, figures=figures),
        "csrf_token": state.csrf_token,
    }
    state.heavy_pending = False
    for name in PANELS:
        if name in HEAVY_PANELS and not heavy_due:
            state.heavy_pending = True
            continue
        html = render_panel(name, context, oob=True)
        digest = fingerprint(html)
        if snapshot or state.sent.get(name) != digest:
            parts.append(html)
            state.sent[name] = digest
    if heavy_due:
        state.heavy_at = now
    if deltas and seq > state.since:
        parts.extend(_tree_and_feed(run, tasks, state, seq))
        parts.append(render_to_string("runs/detail.html#live-seq", {"seq": seq, "oob": True}))
        state.since = seq
    return "".join(parts)


def _tree_and_feed(run: Run, tasks: list[Task], state: LiveState, seq: int) -> list[str]:
    """The tree's changes since ``state.since`` and the new events.

    Rows go in ``#tree-live``, which harness.js empties into the tree: a row replaces the one
    with its id if the page shows it (and is not newer), and is dropped otherwise, so the server
    never needs to know which groups a page has opened. A new agent is appended to its parent's
    list if the page has loaded that list whole. A planning burst (many new agents at once)
    re-renders the tree's first view instead of appending hundreds of nodes.
    """
    rows = list(
        Event.objects.filter(run_id=run.pk, seq__gt=state.since, seq__lte=seq)
        .order_by("-seq")
        .values_list("seq", "task_id", "type")
    )
    tree = agent_tree.build_for(run, tasks)
    context = {
        "run": run,
        "seq": seq,
        "planned_note": planned_note(run, tree),
        "group_kind": group_kind(run),
    }
    changed = {f"t:{task_id}" for _, task_id, _ in rows if f"t:{task_id}" in tree.nodes}
    created = [
        f"t:{task_id}"
        for _, task_id, kind in rows
        if kind == EventType.TASK_CREATED and f"t:{task_id}" in tree.nodes
    ]
    parts: list[str] = []
    if len(created) > APPEND_MAX or (created and len(created) == len(tasks)):
        # Re-rendered whole (bounded by INITIAL_ROWS); every row in it is current.
        parts.append(
            render_to_string(
                "runs/detail.html#tree-body", {**tree_body_context(run, tree), "oob": True}
            )
        )
    else:
        touched = set(changed)
        for key in changed:
            touched.update(tree.ancestors(key))
        live: list[str] = []
        new = set(created)
        for key in sorted(created, key=lambda k: int(k[2:])):  # parents before children
            node = tree.nodes[key]
            if node.parent in new:
                continue  # shown with its parent (walk_one), which is new too
            parent = tree.nodes[node.parent] if node.parent else tree.root
            items = agent_tree.walk_one(tree, key, new)
            live.append(
                render_to_string(
                    "runs/detail.html#tree-append",
                    {"run": run, "seq": seq, "tree_items": items, "container": parent.dom},
                )
            )
        for row_id, html in render_rows(tree, sorted(touched), context).items():
            digest = fingerprint(html)
            if state.sent.get(row_id) != digest:
                live.append(html)
                state.sent[row_id] = digest
        if live:
            parts.append(f'<div id="tree-live" hidden hx-swap-oob="true">{"".join(live)}</div>')
    if rows:
        replace = len(rows) > EVENTS_IN_PAGE
        newest = rows[:EVENTS_IN_PAGE]
        events = list(
            Event.objects.filter(run_id=run.pk, seq__in=[s for s, _, _ in newest])
            .select_related("task")
            .order_by("-seq")
        )
        parts.append(render_events(events, seq, replace=replace))
    return parts


def planned_note(run: Run, tree: AgentTree) -> str:
    """Why the agents appeared as they did: every decomposition plans all of its agents at once,
    before any of them starts; only spawned agents appear later, under their parent."""
    agents = [n.task for n in tree.nodes.values() if n.task is not None]
    report = sum(1 for t in agents if t.step in REPORT_STEPS)
    planned = sum(1 for t in agents if t.parent_id is None) - report
    if not planned:
        return ""
    spawned = len(agents) - planned - report
    note = f"planned {planned} agent{'s' if planned != 1 else ''} at once, from the whole target"
    if run.config and (run.config.get("options") or {}).get("adaptive"):
        note = f"{planned} agents so far: scouts first, then more where they found more (adaptive)"
    if spawned:
        note += f"; {spawned} more spawned by agents, shown under them"
    if report:
        note += f"; {report} report agent{'s' if report != 1 else ''} once they were done"
    return note


# What a group of the tree is, by decomposition (the planner's ``Task.group``).
GROUP_KINDS = {"perspective": "Document", "ensemble": "Voter"}


def group_kind(run: Run) -> str:
    decomposition = str(run.config.get("decomposition", "")) if run.config else ""
    return GROUP_KINDS.get(decomposition, "Folder")


def tree_body_context(
    run: Run, tree: AgentTree, view: agent_tree.View | None = None
) -> dict[str, Any]:
    view = view or agent_tree.initial_view(tree)
    return {
        "run": run,
        "seq": run.last_seq,
        "tree": tree,
        "tree_items": agent_tree.walk(tree, agent_tree.ROOT, view),
        "tree_revealed": view.revealed,
        "planned_note": planned_note(run, tree),
        "group_kind": group_kind(run),
    }


def tree_context(
    run: Run, tasks: list[Task], params: dict[str, str], *, tree: AgentTree | None = None
) -> dict[str, Any]:
    """The tree panel's first render: its first view (or the path to ``reveal``/``open``) and
    the search results of ``q``/``status`` (``tree``: the tasks' tree, when already built)."""
    tree = tree or agent_tree.build_for(run, tasks)
    reveal = params.get("reveal", "")
    # ``reveal`` (search, the inbox) shows an agent among its siblings; ``open`` (a closed
    # node's link without JavaScript) opens the node itself too.
    opening = not reveal.isdigit()
    key = params.get("open", "") if opening else f"t:{reveal}"
    view = agent_tree.initial_view(tree, key or None, open_revealed=opening)
    return {
        **tree_body_context(run, tree, view),
        **search_context(tree, params),
        "task_statuses": Task.Status.choices,
    }


def search_context(tree: AgentTree, params: dict[str, str]) -> dict[str, Any]:
    query = params.get("q", "")[:200]
    status = params.get("status", "")
    if status not in Task.Status.values:
        status = ""
    total, found = tree.search(query, status) if query.strip() or status else (0, [])
    return {
        "tree_query": query,
        "tree_status": status,
        "search_active": bool(query.strip() or status),
        "search_total": total,
        "search_results": found,
    }
