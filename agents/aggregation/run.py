"""Aggregate a finished run: gather its findings and facts, run the chain, store the report."""

from __future__ import annotations

import logging

from agents.aggregation.stages import FindingRow, RunFacts, run_chain
from agents.playbooks import Playbook
from agents.providers import get_provider
from agents.snapshot import open_snapshot
from runs.models import Finding, Run, Task

logger = logging.getLogger(__name__)


def aggregate(run_id: int) -> None:
    """Idempotent: does nothing unless the run is aggregating (or budget-exhausted without a
    report yet) and every task is terminal."""
    from runs.actions import store_report

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.status == Run.Status.BUDGET_EXHAUSTED:
        if (
            run.reports.exists()
            or Task.objects.filter(run=run).exclude(status__in=Task.Status.terminal()).exists()
        ):
            return
    elif run.status != Run.Status.AGGREGATING:
        return
    playbook = Playbook.from_config(run.config)
    rows = [
        FindingRow(**values)
        for values in Finding.objects.filter(run=run).values(
            "id",
            "task_id",
            "lens",
            "rule",
            "title",
            "detail",
            "severity",
            "confidence",
            "path",
            "line_start",
            "line_end",
            "evidence",
        )
    ]
    tasks = list(Task.objects.filter(run=run).values("status", "scope_label", "step", "summary"))
    try:
        is_llm = bool(getattr(get_provider(run.provider), "is_llm", False))
    except Exception:
        is_llm = False
    try:
        skipped_files = open_snapshot(run.snapshot_digest).manifest.skipped
    except Exception:
        skipped_files = []
    facts = RunFacts(
        run_id=run.pk,
        playbook=playbook.name,
        playbook_title=playbook.title,
        target=run.target_label,
        status=run.status,
        provider=run.provider,
        is_llm=is_llm,
        agents={
            "total": len(tasks),
            "succeeded": sum(t["status"] == Task.Status.SUCCEEDED for t in tasks),
            "failed": sum(t["status"] == Task.Status.FAILED for t in tasks),
            "skipped": sum(
                t["status"] in (Task.Status.SKIPPED, Task.Status.CANCELLED) for t in tasks
            ),
        },
        cost_usd=f"{run.cost_usd:.6f}",
        budget_usd=f"{run.budget_usd:.2f}" if run.budget_usd is not None else None,
        unpriced_calls=run.unpriced_calls,
        tokens={"input": run.tokens_in, "output": run.tokens_out},
        skipped_files=list(skipped_files),
        failed_scopes=[t["scope_label"] for t in tasks if t["status"] == Task.Status.FAILED],
        skipped_scopes=[
            t["scope_label"]
            for t in tasks
            if t["status"] in (Task.Status.SKIPPED, Task.Status.CANCELLED)
        ],
        options=playbook.options,
        synthesis_texts=[
            t["summary"]
            for t in tasks
            if t["step"] == "synthesize" and t["status"] == Task.Status.SUCCEEDED
        ],
    )
    draft = run_chain(rows, facts, list(run.aggregation or playbook.aggregation))
    store_report(run, draft)
