"""Fragments of the run page, shared by the page view (first render) and the websocket consumer
(live re-renders). One partial per swap target; every fragment carries the run's ``data-seq``.

The consumer never re-renders the tree: it renders the rows (``#task-{id}``) of the agents whose
events arrived since the last push, plus their ancestors (whose subtree counts moved), and an
append (``#children-{parent}``, beforeend) so a new agent appears under its parent.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.context_processors import PermWrapper
from django.template.loader import render_to_string
from django.utils import timezone

from agents.contract import ProviderError
from agents.providers.catalog import concurrency_cap
from harness_site.workers import worker_slots
from runs import charts, dashboard, forecast, timeline
from runs.models import Event, Finding, Run, Task

EVENTS_IN_PAGE = 50
# Panels whose render is big (a lane per agent, up to 150): pushed at most this often per
# connection. The cost panel is not one of them: its size is bounded (top agents, per model),
# and it must go out with the counters, which show the same totals.
HEAVY_PANELS = {"run-timeline"}
HEAVY_INTERVAL = 1.0
FINDINGS_IN_PAGE = 50
_SEQ = re.compile(r' data-seq="\d+"')

# Fragment id → partial. Each is swapped by id with hx-swap-oob="true".
PANELS = {
    "run-header": "runs/_header.html",
    "run-counters": "runs/_counters.html",
    "run-budget": "runs/_budget.html",
    "run-costs": "runs/_costs.html",
    "run-timeline": "runs/_timeline.html",
    "run-findings": "runs/_findings.html",
    "run-report": "runs/_report.html",
}


def panel_context(run: Run, tasks: list[Task], user: Any) -> dict[str, Any]:
    """Everything the aggregate panels need, from the run row and one list of tasks."""
    now = timezone.now()
    # One source for every figure of spend in this render: the tasks list, read in one query.
    # The run row's totals are written in the same transactions, but read in another statement
    # they can be a finished agent ahead of (or behind) the list.
    totals = dashboard.totals(tasks)
    budget = dashboard.budget(run, tasks, now, totals)
    by_agent = dashboard.cost_by_agent(tasks)
    by_model = dashboard.cost_by_model(tasks)
    waterfall = timeline.waterfall(run, tasks, now)
    series = timeline.concurrency_series(run, tasks, timeline.load_retry_waits(run), now)
    findings = list(
        Finding.objects.filter(run_id=run.pk)
        .select_related(None)
        .only(
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
        )[:FINDINGS_IN_PAGE]
    )
    slots = worker_slots()
    counts = dashboard.status_counts(tasks)
    report = run.reports.order_by("-version").first()
    pending_approval = None
    if report is not None and run.status == Run.Status.AWAITING_REVIEW:
        pending_approval = run.approvals.filter(gate="report", decision="pending").first()
    return {
        "run": run,
        "seq": run.last_seq,
        "perms": PermWrapper(user),
        "user": user,
        "status_counts": counts,
        "concurrency": dashboard.concurrency(
            run,
            tasks,
            now,
            worker_slots=slots.total if slots.known else None,
            workers=slots.count if slots.known else None,
            provider_cap=_provider_cap(run.provider),
            counts=counts,
        ),
        "queue_wait": timeline.queue_wait(run, tasks, now),
        "totals": totals,
        "budget": budget,
        "forecast_checks": forecast.forecast_checks(run, tasks, budget),
        "gauge_svg": charts.gauge(budget),
        "cost_by_agent": by_agent,
        "cost_by_model": by_model,
        "agent_chart": charts.bar_chart(by_agent, metric="cost"),
        "token_chart": charts.bar_chart(by_agent, metric="tokens"),
        "model_chart": charts.bar_chart(by_model, metric="cost"),
        "timeline": waterfall,
        "timeline_svg": charts.waterfall_svg(waterfall),
        "concurrency_series": series,
        "concurrency_svg": charts.concurrency_svg(series, waterfall.span),
        "findings": findings,
        "report": report,
        "pending_approval": pending_approval,
    }


def _provider_cap(name: str) -> int | None:
    try:
        return concurrency_cap(name)
    except (ProviderError, KeyError, ValueError):  # a provider removed from the config since
        return None


def render_panel(name: str, context: dict[str, Any], *, oob: bool) -> str:
    return render_to_string(PANELS[name], {**context, "oob": oob})


def render_node(task: Task, tree: dashboard.Tree, seq: int, *, oob: bool) -> str:
    """The row of one agent (``#task-{id}``), swapped in place."""
    return render_to_string(
        "runs/_node_row.html",
        {
            "task": task,
            "sub": tree.subtree.get(task.pk),
            "seq": seq,
            "oob": oob,
            "has_children": bool(tree.children.get(task.pk)),
        },
    )


def render_append(task: Task, tree: dashboard.Tree, seq: int) -> str:
    """A new agent appended under its parent; harness.js drops it if the node already exists."""
    parent = task.parent_id if task.parent_id in tree.tasks else None
    return render_to_string(
        "runs/_node_append.html",
        {
            "task": task,
            "sub": tree.subtree.get(task.pk),
            "seq": seq,
            "parent_dom": f"children-{parent}" if parent else "children-root",
            "collapsed": tree.collapsed,
        },
    )


def render_events(events: list[Event], seq: int, *, replace: bool) -> str:
    """New events prepended to the feed, or (after a long gap) the feed replaced whole."""
    return render_to_string(
        "runs/_event_feed.html",
        {"events": events, "seq": seq, "oob": True, "replace": replace},
    )


def fingerprint(html: str) -> str:
    """Hash of a fragment without its seq, to skip sending what the page already shows."""
    return hashlib.blake2b(_SEQ.sub("", html).encode(), digest_size=12).hexdigest()


@dataclass
class LiveState:
    """What one websocket connection has pushed so far."""

    since: int = 0
    sent: dict[str, str] = field(default_factory=dict)
    appended: set[int] = field(default_factory=set)
    heavy_at: float = 0.0
    # True when a heavy panel was held back: the consumer schedules one more push for it.
    heavy_pending: bool = False
    # The session's CSRF secret (from its cookie) so re-rendered action forms still post.
    csrf_token: str = ""


def render_update(
    run_id: int,
    user: Any,
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
    tasks = dashboard.load_tasks(run)
    tree = dashboard.build_tree(tasks)
    parts: list[str] = []
    context = {**panel_context(run, tasks, user), "csrf_token": state.csrf_token}
    now = time.monotonic() if now is None else now
    heavy_due = snapshot or now - state.heavy_at >= HEAVY_INTERVAL
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
        parts.extend(_tree_and_feed(run, tree, state, seq))
        parts.append(render_to_string("runs/_live_seq.html", {"seq": seq, "oob": True}))
        state.since = seq
    return "".join(parts)


def _tree_and_feed(run: Run, tree: dashboard.Tree, state: LiveState, seq: int) -> list[str]:
    rows = list(
        Event.objects.filter(run_id=run.pk, seq__gt=state.since, seq__lte=seq)
        .order_by("-seq")
        .values_list("seq", "task_id")
    )
    changed = {task_id for _, task_id in rows if task_id in tree.tasks}
    touched = set(changed)
    for task_id in changed:
        touched.update(tree.ancestors(task_id))
    parts: list[str] = []
    for task_id in sorted(touched):  # parents first: an append needs its parent's list
        task = tree.tasks[task_id]
        if task_id in changed and task_id not in state.appended:
            parts.append(render_append(task, tree, seq))
            state.appended.add(task_id)
        html = render_node(task, tree, seq, oob=True)
        digest = fingerprint(html)
        if state.sent.get(f"task-{task_id}") != digest:
            parts.append(html)
            state.sent[f"task-{task_id}"] = digest
    if rows:
        replace = len(rows) > EVENTS_IN_PAGE
        newest = rows[:EVENTS_IN_PAGE]
        events = list(
            Event.objects.filter(run_id=run.pk, seq__in=[s for s, _ in newest])
            .select_related("task")
            .order_by("-seq")
        )
        parts.append(render_events(events, seq, replace=replace))
    return parts


def tree_context(run: Run, tasks: list[Task], query: str = "", status: str = "") -> dict[str, Any]:
    tree = dashboard.build_tree(tasks)
    matching = dashboard.filter_tree(tree, query, status)
    return {
        "tree": tree,
        "tree_items": tree.walk(matching),
        "tree_filtered": matching is not None,
        "tree_matches": len(matching) if matching is not None else len(tasks),
        "tree_query": query,
        "tree_status": status,
        "task_statuses": Task.Status.choices,
        "seq": run.last_seq,
    }
