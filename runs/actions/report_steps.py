"""The report's own agents: once every worker agent of a run is done, a synthesis agent writes
the report's narrative and a critic agent judges its serious items, each a real Task (its own
budget reservation, span, steps and cost, shown in the tree) when its role has a language model.

They run one after the other while the run is still ``running``, so dispatch, budgets, retries,
the sweeper and cancellation treat them like any agent; aggregation starts when neither is left
to create. Created by ``dispatch`` under the run's lock, so never twice.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.db.models import F, Max

from agents.aggregation.stages import RunFacts
from agents.contract import ProviderError
from agents.playbooks import CRITIQUE_STEP, REPORT_STEP, REPORT_STEPS, report_step_spec
from agents.providers.catalog import get_provider
from runs.eventlog.event_types import EventType, task_created_payload
from runs.eventlog.events import record_event
from runs.models import Run, Task

logger = logging.getLogger(__name__)

# Where they appear in the agent tree (a name with a space: no planner makes such a group).
REPORT_GROUP = "report agents"
# The aggregation step each report agent does with a model.
CHAIN_STEP = {REPORT_STEP: "synthesis", CRITIQUE_STEP: "critic"}
LABELS = {
    REPORT_STEP: ("synthesis", "report summary", "write the report's summary from its findings"),
    CRITIQUE_STEP: ("critic", "report critique", "challenge the report's serious findings"),
}


def _wants_model(run: Run, step: str) -> bool:
    """The step is in the run's chain and its role's provider is a language model."""
    chain = run.aggregation or list(run.resolved_playbook.aggregation)
    if CHAIN_STEP[step] not in chain:
        return False
    spec = report_step_spec(run.resolved_playbook, step)
    try:
        return bool(get_provider(spec.provider or run.provider).is_llm)
    except ProviderError:  # unconfigured now: the deterministic step does the work
        return False


def start_next_report_step(run: Run) -> bool:
    """Create the next report agent the run needs, if any (the caller holds the run's lock and
    has seen every task terminal). True when one was created: the run is not finished yet."""
    # A report agent counts only when it started after the last worker agent finished: an
    # operator's retry of failed agents (or a budget extension) brings new findings, and a
    # summary of the old ones would be stale.
    last_work = (
        Task.objects.filter(run=run)
        .exclude(step__in=REPORT_STEPS)
        .aggregate(last=Max("finished_at"))["last"]
    )
    current = {
        step
        for step, created in Task.objects.filter(run=run, step__in=REPORT_STEPS).values_list(
            "step", "created_at"
        )
        if last_work is None or created >= last_work
    }
    # A playbook whose plan already has a synthesis agent (document synthesis) gets its
    # narrative from it: a second one would pay twice for the same account.
    if (
        REPORT_STEP not in current
        and _wants_model(run, REPORT_STEP)
        and not Task.objects.filter(run=run, step="synthesize").exists()
    ):
        _create(run, REPORT_STEP)
        return True
    if CRITIQUE_STEP not in current and _wants_model(run, CRITIQUE_STEP):
        _create(run, CRITIQUE_STEP)
        return True
    return False


def _create(run: Run, step: str) -> Task:
    spec = report_step_spec(run.resolved_playbook, step)
    lens, label, why = LABELS[step]
    generation = Task.objects.filter(run=run, step=step).count()
    task = Task.objects.create(
        run=run,
        key=hashlib.sha256(f"{step}:{run.uid}:{generation}".encode()).hexdigest(),
        step=step,
        role=spec.role,
        lens=lens,
        scope={},
        scope_label=label,
        group=REPORT_GROUP,
        why=why,
        provider=spec.provider or run.provider,
        model=spec.model or run.model,
        critical=False,
        needs_approval=spec.needs_approval,
    )
    Run.objects.filter(pk=run.pk).update(tasks_total=F("tasks_total") + 1)
    run.refresh_from_db(fields=["tasks_total"])
    payload = task_created_payload(
        key=task.key, step=step, lens=lens, scope=label, why=why, parent=None
    )
    record_event(run, EventType.TASK_CREATED, payload, task)
    logger.info("run %s: %s agent #%s created", run.pk, step, task.pk)
    return task


def add_model_step_facts(run: Run, facts: RunFacts) -> dict[str, Any]:
    """Put what the report agents wrote into the report's facts (read-only); returns the
    synthesis input figures for the report's stats ({} without a synthesis agent)."""
    stats: dict[str, Any] = {}
    latest = {t.step: t for t in Task.objects.filter(run=run, step__in=REPORT_STEPS).order_by("id")}
    for task in latest.values():
        data = (task.output or {}).get("data") or {}
        by = f"{(task.output or {}).get('model') or task.model or task.provider}, agent #{task.pk}"
        if task.status != Task.Status.SUCCEEDED:
            what = "synthesis" if task.step == REPORT_STEP else "critic"
            why = f": {task.error[:200]}" if task.error else ""
            fallback = "the summary is the template" if task.step == REPORT_STEP else ""
            facts.report_step_notes.append(
                f"The {what} agent (#{task.pk}) {task.status}{why}"
                + (f"; {fallback}" if fallback else "")
            )
            continue
        sent = data.get("sent") or {}
        if task.step == REPORT_STEP:
            themes = [str(t)[:200] for t in data.get("themes") or [] if str(t).strip()][:8]
            facts.model_narrative = task.summary + (
                "\n\nThemes: " + "; ".join(themes) if themes else ""
            )
            facts.model_narrative_by = by
            raw, condensed = sent.get("raw_tokens_est", 0), sent.get("condensed_tokens_est", 0)
            stats = {
                "agent": task.pk,
                "input_tokens": task.tokens_in,
                "condensed_tokens_est": condensed,
                "raw_tokens_est": raw,
                "reduction": round(raw / condensed, 1) if condensed else None,
                "clusters": sent.get("clusters", 0),
                "raw_findings": sent.get("raw_findings", 0),
            }
        else:
            facts.model_verdicts = list(data.get("verdicts") or [])
            facts.model_verdict_keys = dict(sent.get("ids") or {})
            facts.model_critic_by = by
    return stats
