"""/api/v1/approvals/: the gates of the runs you may see (the inbox: the open ones, oldest
first), and a reviewer's decision at one (four-eyes rule and all: ``decide_approval``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from runs.access import require_perm
from runs.actions import decide_approval
from runs.api.auth import granted
from runs.api.pagination import DEFAULT_LIMIT, Page, keyset
from runs.api.problems import Problem
from runs.api.schemas import ApprovalOut, DecisionIn
from runs.api.serialize import approval_out
from runs.models import Approval, Run

router = Router(tags=["approvals"])

DECISIONS = ("all", *Approval.Decision.values)


class ApprovalPage(Page):
    items: list[ApprovalOut]


def _visible(user: Any) -> Any:
    return Approval.objects.filter(run__in=Run.objects.visible_to(user)).select_related(
        "decided_by"
    )


@router.get("/", response=ApprovalPage, url_name="approvals", summary="Gates (scope: read)")
def approvals(
    request: HttpRequest,
    decision: str = "pending",
    run: int | None = None,
    gate: str = "",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Oldest first. ``decision``: pending (the default: what waits for a reviewer), approved,
    rejected or all; ``run`` and ``gate`` (report, task, finding, budget) narrow it."""
    user = granted(request, "read")
    if decision not in DECISIONS:
        raise Problem(400, f"decision is one of {', '.join(DECISIONS)}.", code="bad-parameter")
    rows = _visible(user)
    if decision != "all":
        rows = rows.filter(decision=decision)
    if run is not None:
        rows = rows.filter(run_id=run)
    if gate:
        if gate not in Approval.Gate.values:
            raise Problem(
                400, f"gate is one of {', '.join(Approval.Gate.values)}.", code="bad-parameter"
            )
        rows = rows.filter(gate=gate)
    return keyset(rows, cursor, limit, item=approval_out)


@router.get(
    "/{approval_id}/", response=ApprovalOut, url_name="approval", summary="A gate (scope: read)"
)
def approval(request: HttpRequest, approval_id: int) -> dict[str, Any]:
    user = granted(request, "read")
    return approval_out(get_object_or_404(_visible(user), pk=approval_id))


@router.post(
    "/{approval_id}/decide/",
    response=ApprovalOut,
    url_name="decide",
    summary="Decide a gate (scope: review; role: reviewer)",
)
def decide(request: HttpRequest, approval_id: int, body: DecisionIn) -> dict[str, Any]:
    """approved, rejected (a comment says why) or, on a report, changes_requested. Refused
    (409, ``decision-refused``) with the page's words: already decided (by whom, when), the
    four-eyes rule (whoever launched the run does not decide its report or budget gates)."""
    user = granted(request, "review")
    gate = get_object_or_404(_visible(user).select_related("run"), pk=approval_id)
    require_perm(user, "runs.decide_approval")
    decide_approval(gate, user, body.decision, body.comment)
    gate.refresh_from_db()
    return approval_out(gate)
