"""Tiered models on the read side: which tier confirmed each report item, what the depth tier
rejected, and each tier's agents, tokens and cost for the run page."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db.models import Count
from django.urls import reverse

from agents.playbooks import VERIFY_STEP
from agents.tiers import escalates, thresholds
from runs.models import Finding, Run, Task


def tier_of(finding: Finding | None, models: dict[int, str]) -> dict[str, Any]:
    """A report member's tier: "depth" once a depth agent gave its verdict, else "breadth";
    the verdict ("" never escalated, "escalated" left without one), its reason and model."""
    if finding is None:
        return {"tier": "breadth", "verdict": "", "verdict_reason": "", "depth_model": ""}
    return {
        "tier": finding.tier,
        "verdict": finding.verdict,
        "verdict_reason": finding.verdict_reason,
        "depth_model": models.get(finding.verified_by_id or 0, ""),
    }


def confirmed_by(members: list[dict[str, Any]]) -> str:
    """The tier that confirmed a report item: "depth" when a depth agent confirmed or corrected
    one of its findings, "breadth" otherwise (found by the breadth tier, not escalated, or
    escalated and left without a verdict: ``verdict`` says which)."""
    depth = any(m.get("verdict") in ("confirmed", "corrected") for m in members)
    return "depth" if depth else "breadth"


def rejected_by_depth(
    run: Run, models: dict[int, str], absolute: Callable[[str], str] = lambda url: url
) -> list[dict[str, Any]]:
    """The findings a depth agent rejected: out of the report's items, never silently gone."""
    rows = Finding.objects.filter(run=run, verdict="rejected").order_by("path", "line_start", "id")
    return [
        {
            "finding_id": f.pk,
            "title": f.title,
            "severity": f.severity,
            "confidence": f.confidence,
            "path": f.path,
            "line_start": f.line_start,
            "line_end": f.line_end,
            "task_id": f.task_id,
            "depth_task_id": f.verified_by_id,
            "depth_model": models.get(f.verified_by_id or 0, ""),
            "reason": f.verdict_reason,
            "agent_url": absolute(reverse("runs:task", args=[run.pk, f.task_id])),
        }
        for f in rows
    ]


def tier_costs(run: Run, tasks: list[Task]) -> list[dict[str, Any]]:
    """Per tier, from the run page's one list of tasks (breadth: every agent but the depth
    ones; depth: the verifiers): agents, tokens in and out, cost, models, and the depth tier's
    verdicts. [] for a run that does not escalate (no query then)."""
    config = run.config or {}
    options = config.get("options") or {}
    if not escalates(config.get("roles") or {}, options):  # read raw: older configs lack keys
        return []
    rows: list[dict[str, Any]] = []
    for tier in ("breadth", "depth"):
        mine = [t for t in tasks if (t.step == VERIFY_STEP) == (tier == "depth")]
        rows.append(
            {
                "tier": tier,
                "agents": len(mine),
                "tokens_in": sum(t.tokens_in for t in mine),
                "tokens_out": sum(t.tokens_out for t in mine),
                "cost_usd": sum((t.cost_usd for t in mine), Decimal(0)),
                "models": sorted({t.model for t in mine if t.model}),
            }
        )
    counted = (
        Finding.objects.filter(run=run, tier="depth").values("verdict").annotate(n=Count("id"))
    )
    rows[1]["verdicts"] = {row["verdict"]: row["n"] for row in counted}
    rows[1]["thresholds"] = thresholds(options).describe()
    return rows


def tier_summary(run: Run) -> list[dict[str, Any]]:
    """``tier_costs`` as JSON for ``launch_run --json`` and the API ([] without escalation)."""
    config = run.config or {}
    if not escalates(config.get("roles") or {}, config.get("options") or {}):
        return []  # before any query: the API's run pages are counted
    fields = ("step", "model", "tokens_in", "tokens_out", "cost_usd")
    rows = tier_costs(run, list(Task.objects.filter(run=run).only(*fields)))
    return [{**row, "cost_usd": float(row["cost_usd"])} for row in rows]
