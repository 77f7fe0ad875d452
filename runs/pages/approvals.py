"""The approvals inbox: every gate waiting on a reviewer, across the runs a user may see, the
latest decisions made there, and what the open inbox page lacks since it was rendered (its
websocket's updates)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.context_processors import PermWrapper
from django.contrib.auth.models import User
from django.template.loader import render_to_string

from runs.models import Approval, Run

GATE_WORDS: dict[str, str] = {
    Approval.Gate.REPORT: "Report",
    Approval.Gate.TASK: "Agent",
    Approval.Gate.FINDING: "Finding",
    Approval.Gate.BUDGET: "Budget",
}


def pending_for(user: User) -> Any:
    """Open gates in the runs ``user`` may see, oldest first."""
    return (
        Approval.objects.filter(
            decision=Approval.Decision.PENDING, run__in=Run.objects.visible_to(user)
        )
        .select_related("run", "run__launched_by")
        .order_by("requested_at", "id")
    )


INBOX_MAX = 200
# The inbox's history is the latest decisions, enough to see what was just decided and by whom;
# a run's own page keeps all of its decisions.
DECIDED_MAX = 50


def decided_for(user: User) -> Any:
    """Decided gates in the runs ``user`` may see (the same rule as the open ones), newest
    decision first."""
    return (
        Approval.objects.filter(run__in=Run.objects.visible_to(user))
        .exclude(decision=Approval.Decision.PENDING)
        .select_related("run", "decided_by")
        .order_by("-decided_at", "-id")
    )


def labelled(approvals: list[Approval]) -> list[Approval]:
    for approval in approvals:
        approval.gate_word = GATE_WORDS.get(approval.gate, approval.gate)  # type: ignore[attr-defined]
    return approvals


@dataclass
class HeldRun:
    """A run with agents waiting at their gates, for the inbox's bulk form: how many, and by
    tree group when they are in more than one."""

    run: Run
    total: int
    groups: list[tuple[str, int]] = field(default_factory=list)


def held_runs(user: User) -> list[HeldRun]:
    """The runs ``user`` may see with two or more agents waiting (one is decided in place)."""
    by_run: dict[int, list[tuple[str, int]]] = {}
    visible = Approval.objects.filter(run__in=Run.objects.visible_to(user))
    for run_id, group, count in visible.held_agents_by_group():
        by_run.setdefault(run_id, []).append((group, count))
    totals = {pk: sum(n for _, n in groups) for pk, groups in by_run.items()}
    runs = Run.objects.in_bulk([pk for pk, total in totals.items() if total > 1])
    return [
        HeldRun(runs[pk], totals[pk], by_run[pk] if len(by_run[pk]) > 1 else [])
        for pk in sorted(runs)
    ]


def bulk_context(user: User) -> dict[str, Any]:
    if not user.has_perm("runs.decide_approval"):
        return {"held_runs": None}
    return {"held_runs": held_runs(user)}


def inbox_context(user: User) -> dict[str, Any]:
    """The inbox page: the oldest open gates first, the bulk form's held runs, and the latest
    decisions."""
    return {
        "pending": labelled(list(pending_for(user)[:INBOX_MAX])),
        **bulk_context(user),
        **decided_context(user),
    }


def decided_context(user: User) -> dict[str, Any]:
    return {"decided": labelled(list(decided_for(user)[:DECIDED_MAX]))}


def inbox_update(user: User, shown: set[int], csrf_token: str) -> tuple[str, set[int]]:
    """What the open inbox page lacks: gates decided since go (oob delete), new ones are added
    at the end (they are the newest; the list is oldest first), the counts follow. Gates still
    shown are left alone, so a comment being typed survives. Returns the html and the new
    set of shown ids."""
    pending = labelled(list(pending_for(user)[:INBOX_MAX]))
    now = {a.pk for a in pending}
    if now == shown:
        return "", shown
    context = {"user": user, "perms": PermWrapper(user), "csrf_token": csrf_token}
    context["four_eyes"] = settings.HARNESS_FOUR_EYES
    parts = [f'<li id="approval-{pk}" hx-swap-oob="delete"></li>' for pk in sorted(shown - now)]
    added = [a for a in pending if a.pk not in shown]
    if added:
        items = "".join(
            render_to_string("runs/inbox.html#inbox-item", {**context, "a": a}) for a in added
        )
        parts.append(f'<ul id="inbox-list" hx-swap-oob="beforeend">{items}</ul>')
    count = len(now)
    parts.append(render_to_string("runs/inbox.html#inbox-summary", {"count": count, "oob": True}))
    if user.has_perm("runs.decide_approval"):
        parts.append(render_to_string("base.html#approvals-count", {"count": count, "oob": True}))
        bulk = {**context, **bulk_context(user), "oob": True}
        parts.append(render_to_string("runs/inbox.html#inbox-bulk", bulk))
    # A gate that left the list was decided (or its run was): the history follows.
    parts.append(
        render_to_string("runs/inbox.html#inbox-decided", {**decided_context(user), "oob": True})
    )
    hidden = " hidden" if count else ""
    parts.append(
        f'<div id="inbox-empty" hx-swap-oob="true"{hidden}'
        ' class="panel empty-inline"><h2>Nothing is waiting</h2><p>Reports that finished '
        "aggregating, agents held for approval, and budget extensions appear here as "
        "they come, until someone decides them.</p></div>"
    )
    return "".join(parts), now
