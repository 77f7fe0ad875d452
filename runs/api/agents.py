"""/api/v1/runs/{id}/agents/ (the tree, a page at a time; one agent with its steps) and
/api/v1/runs/{id}/events/ (the run's log, by seq, for followers)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from runs.access import get_run_for_user
from runs.api.auth import granted
from runs.api.pagination import DEFAULT_LIMIT, Page, check_limit, decode, encode, keyset
from runs.api.problems import Problem
from runs.api.schemas import AgentDetail, AgentOut, EventOut, EventPage
from runs.api.serialize import agent_out, event_out, finding_out, step_out
from runs.models import Event, Task
from runs.pages.agent import agent_context

router = Router(tags=["agents and events"])


class AgentPage(Page):
    items: list[AgentOut]


@router.get(
    "/{run_id}/agents/",
    response=AgentPage,
    url_name="agents",
    summary="A run's agents, a page at a time (scope: read)",
)
def agents(
    request: HttpRequest,
    run_id: int,
    parent: str = "",
    status: str = "",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """In tree order (creation order: parents before their children). ``parent`` narrows to
    one level of the tree: ``root`` for the top agents, or an agent's id for its children;
    ``status`` to agents in that status."""
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    rows = Task.objects.filter(run=run).defer("output", "summary", "scope")
    if parent == "root":
        rows = rows.filter(parent__isnull=True)
    elif parent.isdigit():
        rows = rows.filter(parent_id=int(parent))
    elif parent:
        raise Problem(400, "parent is 'root' or an agent's id.", code="bad-parameter")
    if status:
        if status not in Task.Status.values:
            known = ", ".join(Task.Status.values)
            raise Problem(
                400, f"Unknown agent status {status!r}: one of {known}.", code="bad-parameter"
            )
        rows = rows.filter(status=status)
    return keyset(rows, cursor, limit, item=agent_out)


@router.get(
    "/{run_id}/agents/{agent_id}/",
    response=AgentDetail,
    url_name="agent",
    summary="One agent with its steps, tries and findings (scope: read)",
)
def agent(request: HttpRequest, run_id: int, agent_id: int) -> dict[str, Any]:
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    task = get_object_or_404(Task, run=run, pk=agent_id)
    page = agent_context(run, task)
    return {
        **agent_out(task),
        "summary": task.summary,
        "output": task.output or {},
        "steps": [step_out(step) for step in page["steps"]],
        "attempts_history": [vars(attempt) for attempt in page["history"].attempts],
        "findings": [finding_out(f, getattr(f, "report_rank", None)) for f in page["findings"]],
    }


@router.get(
    "/{run_id}/events/",
    response=EventPage,
    url_name="events",
    summary="A run's event log by seq, for followers (scope: read)",
)
def events(
    request: HttpRequest,
    run_id: int,
    after: int = 0,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Events with a seq above ``after`` (or the cursor's), oldest first. Seqs are gap-free
    and never change: to follow a run, ask again with ``after=last_seq``."""
    user = granted(request, "read")
    run = get_run_for_user(user, run_id)
    start = decode(cursor)
    if start is None:
        start = after
    if start < 0:
        raise Problem(400, "after is a seq, 0 or more.", code="bad-parameter")
    limit = check_limit(limit)
    found: list[Event] = list(
        Event.objects.filter(run=run, seq__gt=start).order_by("seq")[: limit + 1]
    )
    more = len(found) > limit
    found = found[:limit]
    last = found[-1].seq if found else start
    return {
        "items": [event_out(e) for e in found],
        "next_cursor": encode(last) if more else None,
        "last_seq": last,
    }


__all__ = ["EventOut", "router"]
