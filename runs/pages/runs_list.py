"""The runs list: the runs a user may see, narrowed by the list's filters. The page view
renders it first; the list's websocket re-renders the rows that changed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import QueryDict

from runs.forms import RunFilterForm
from runs.models import Run
from runs.models.run import RunQuerySet

RUNS_PER_PAGE = 25


def filtered_runs(user: User, params: dict[str, str]) -> tuple[RunQuerySet, str, str]:
    """The runs ``user`` may see, narrowed by the list's filters (shared with the consumer)."""
    runs = Run.objects.visible_to(user).select_related("launched_by")
    status = params.get("status", "")
    playbook = params.get("playbook", "")
    if status == "active":
        runs = runs.active()
    elif status in Run.Status.values:
        runs = runs.filter(status=status)
    else:
        status = ""
    if playbook:
        runs = runs.filter(playbook=playbook)
    return runs, status, playbook


def list_context(user: User, query: QueryDict) -> dict[str, Any]:
    """The runs list page: one page of the filtered runs, the filters and the counts."""
    runs, status, playbook = filtered_runs(user, {key: str(query.get(key)) for key in query})
    page = Paginator(runs, RUNS_PER_PAGE).get_page(query.get("page"))
    visible = Run.objects.visible_to(user)
    prefix = query.copy()
    prefix.pop("page", None)
    return {
        "page": page,
        "filter_form": RunFilterForm(),
        "filter_status": status,
        "filter_playbook": playbook,
        "playbook_names": sorted(set(visible.values_list("playbook", flat=True))),
        "active_count": visible.active().count(),
        "query_prefix": f"{prefix.urlencode()}&" if prefix else "",
        # The live list's filters and the runs it shows (the consumer swaps only those).
        "ws_url": "/ws/runs/?"
        + (f"{query.urlencode()}&" if query else "")
        + "shown="
        + ",".join(str(run.pk) for run in page.object_list),
    }
