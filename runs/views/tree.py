"""The agent tree's on-demand parts: a node's children when it is opened, and search."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs.access import AuthenticatedHttpRequest, get_run_for_user
from runs.pages.run import dashboard
from runs.pages.run import tree as agent_tree
from runs.pages.run.live import group_kind, planned_note, search_context


def _offset(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


@require_GET
def tree_children(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """``?node=<key>&offset=N``: a page of that node's children (the items of its list), each
    closed. A node that is not in the run answers 404 with a line the list can show."""
    run = get_run_for_user(request.user, run_id)
    tree = agent_tree.build_for(run, dashboard.load_tasks(run))
    key = request.GET.get("node", "")
    if key not in tree.nodes:
        return HttpResponse(
            '<li class="muted small">This part of the tree is not in the run.</li>', status=404
        )
    items = agent_tree.walk(tree, key, agent_tree.View(), _offset(request.GET.get("offset")))
    context = {
        "run": run,
        "seq": run.last_seq,
        "tree": tree,
        "tree_items": items,
        "planned_note": planned_note(run, tree),
        "group_kind": group_kind(run),
    }
    return render(request, "runs/detail.html#tree-items", context)


@require_GET
def tree_search(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """``?q=…&status=…``: the agents that match, each with a link that reveals it in the tree."""
    run = get_run_for_user(request.user, run_id)
    tree = agent_tree.build_for(run, dashboard.load_tasks(run))
    context = {"run": run, **search_context(tree, request.GET.dict())}
    return render(request, "runs/detail.html#tree-search", context)
