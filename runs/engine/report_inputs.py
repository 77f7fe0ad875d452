"""What the report's own agents read (see ``runs.actions.report_steps``): the run's findings
through the deterministic stages (dedup, quorum, confidence), condensed. Read-only; the worker
calls it just before the agent's model call, so the clusters are those of the final report (the
same stored findings through the same deterministic stages)."""

from __future__ import annotations

from typing import Any

from agents.aggregation.model_steps import (
    MAX_CLUSTERS,
    cluster_id,
    condense,
    critic_input,
    raw_findings_payload,
    serious,
    tokens_estimate,
)
from agents.aggregation.similarity import embedder_for
from agents.aggregation.stages import ranked, run_chain
from agents.playbooks import REPORT_STEP
from runs.actions.report import _gather
from runs.models import Task

DETERMINISTIC = ("dedup", "quorum", "confidence")


def report_step_inputs(task: Task) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the agent's inputs, what was sent: cluster id → key and the token figures)."""
    run = task.run
    rows, facts, snapshot = _gather(run, {})
    full = run.aggregation or run.resolved_playbook.aggregation
    chain = [step for step in full if step in DETERMINISTIC]
    draft = run_chain(rows, facts, chain, embedder_for(run.provider, facts.options), snapshot)
    kept = ranked(draft.clusters)
    if task.step == REPORT_STEP:
        payload: dict[str, Any] = {
            "playbook": facts.playbook_title,
            "target": facts.target,
            "agents": facts.agents,
            **condense(kept),
        }
        listed = kept[:MAX_CLUSTERS]
    else:
        narrative = (
            Task.objects.filter(run=run, step=REPORT_STEP, status=Task.Status.SUCCEEDED)
            .order_by("-id")  # the latest: an operator's retry makes a new one
            .values_list("summary", flat=True)
            .first()
        )
        payload = critic_input(kept, narrative or "")
        listed = serious(kept)
    sent = {
        "ids": {cluster_id(c): c.key for c in listed},
        "clusters": len(kept),
        "raw_findings": len(rows),
        # Both with the same estimator: the input actually sent against the raw findings it
        # replaces (the goal is at least five times fewer tokens).
        "condensed_tokens_est": tokens_estimate(payload),
        "raw_tokens_est": tokens_estimate(raw_findings_payload(rows)),
    }
    return {"report": payload}, sent
