"""The "report document" of one stored version: what every export (Markdown, JSON, SARIF) and
the provenance page are made from. Reports stored before clusters kept their ``members`` get
them rebuilt from the Finding rows, so every version exports with provenance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from agents.aggregation.evidence import FABRICATED
from agents.playbooks import VERIFY_STEP
from runs.models import Finding, Report, Run, Task
from runs.pages.calibration import card_with_calibration
from runs.pages.tiers import confirmed_by, rejected_by_depth, tier_of


def _members_from_rows(cluster: dict[str, Any], findings: dict[int, Finding]) -> list[Any]:
    seen: set[int] = set()
    members = []
    for fid in cluster.get("finding_ids", []):
        f = findings.get(fid)
        if f is None:
            continue
        members.append(
            {
                "finding_id": f.pk,
                "task_id": f.task_id,
                "lens": f.lens,
                "title": f.title,
                "severity": f.severity,
                "confidence": f.confidence,
                "path": f.path,
                "line_start": f.line_start,
                "line_end": f.line_end,
                "evidence_status": "unchecked",
                "vote": f.task_id not in seen,
            }
        )
        seen.add(f.task_id)
    return members


def report_document(
    run: Run, report: Report, absolute: Callable[[str], str] = lambda url: url
) -> dict[str, Any]:
    """Plain data (JSON-ready). ``absolute`` turns our paths into full URLs when a request is
    at hand (the export views); the management command leaves them relative."""
    finding_ids = {fid for c in report.clusters for fid in c.get("finding_ids", [])}
    findings = {f.pk: f for f in Finding.objects.filter(run=run, pk__in=finding_ids)}
    task_ids = {f.task_id for f in findings.values()} | {
        tid for c in report.clusters for tid in c.get("task_ids", [])
    }
    labels = dict(Task.objects.filter(run=run, pk__in=task_ids).values_list("pk", "scope_label"))
    models = dict(Task.objects.filter(run=run, step=VERIFY_STEP).values_list("pk", "model"))
    clusters = []
    for raw in report.clusters:
        c = dict(raw)
        c["members"] = [dict(m) for m in (c.get("members") or _members_from_rows(c, findings))]
        for m in c["members"]:
            m["agent_url"] = absolute(reverse("runs:task", args=[run.pk, m["task_id"]]))
            m["agent"] = labels.get(m["task_id"], "")
            m["review"] = getattr(findings.get(m["finding_id"]), "review", "")
            m["cwe"] = getattr(findings.get(m["finding_id"]), "cwe", None)
            m.update(tier_of(findings.get(m["finding_id"]), models))
        c["confirmed_by"] = confirmed_by(c["members"])
        c.setdefault("evidence_status", "unchecked")
        c["fabricated"] = c["evidence_status"] in FABRICATED
        c.setdefault("score", c.get("confidence", 0))
        c.setdefault("rank", 0)
        clusters.append(c)
    clusters.sort(key=lambda c: (not c.get("kept"), c.get("rank") or 10**9, c.get("key", "")))
    params = dict(report.params or {})
    scorecard = params.pop("scorecard", None)
    document = {
        "schema": "agent-harness/report@1",
        "run": {
            "id": run.pk,
            "playbook": run.playbook,
            "target": run.target_label,
            "status": run.status,
            "provider": run.provider,
            "url": absolute(reverse("runs:detail", args=[run.pk])),
        },
        "report": {
            "version": report.version,
            "chain": list(report.chain),
            "params": params,
            "stats": dict(report.stats or {}),
            "notes": list(report.notes or []),
            "created_at": report.created_at.isoformat(),
            "url": absolute(reverse("runs:report", args=[run.pk, report.version])),
        },
        "clusters": clusters,
        "rejected_by_depth": rejected_by_depth(run, models, absolute),
    }
    if scorecard is not None:  # an evaluation's (agents.evaluation.scorecard)
        # With each dimension's agreement with the reviewers' hand scores (``calibration``).
        document["scorecard"] = card_with_calibration(scorecard, run)
    return document
