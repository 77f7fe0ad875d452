"""Tiered models (``agents.tiers``): a breadth agent's serious or uncertain items handed to a
depth agent, and the depth agent's verdicts applied to them.

Both happen inside the agent's success transaction (``completion.complete_tasks``), so the
depth agent, its ``task.created`` and the ``tier.escalated`` event commit with the breadth
agent's findings, and a verdict commits with the depth agent's success: a redelivered agent
that loses its claim escalates nothing twice.

The depth agent is a child of the breadth agent in the tree (``parent``, one level deeper):
its scope names the items it judges. It is not a spawn: ``max_depth`` and the per-agent
children cap do not refuse it (the breadth agent did not ask for it, the run's thresholds did),
but the run's ``max_agents`` and its status do, and the refusal is an event.
"""

from __future__ import annotations

from typing import Any

from agents.aggregation.stages import OUTPUT_CAP_RULE
from agents.planning import task_key
from agents.playbooks import DEPTH_ROLE, NON_WORKER_ROLES, VERIFY_STEP, Playbook
from agents.tiers import MAX_ITEMS, clean_verdicts, escalates, item_of, thresholds
from agents.wording import count
from runs.actions.new_tasks import task_created
from runs.eventlog.event_types import EventType
from runs.eventlog.events import EventItem
from runs.models import Finding, Run, Task

ESCALATED = "escalated"


def after_success(
    run_id: int, task: Task, playbook: Playbook, found: list[Finding], data: dict[str, Any]
) -> tuple[int, list[EventItem]]:
    """(depth agents created, events) for an agent that just succeeded: a depth agent's
    verdicts applied, or a breadth agent's items escalated. Called under the run's lock."""
    if task.step == VERIFY_STEP:
        return 0, apply_verdicts(task, data)
    if task.role in NON_WORKER_ROLES or not escalates(playbook.roles, playbook.options):
        return 0, []
    return escalate(Run.objects.get(pk=run_id), task, playbook, found)


def escalate(
    run: Run, task: Task, playbook: Playbook, found: list[Finding]
) -> tuple[int, list[EventItem]]:
    """Mark the items of ``found`` (not yet stored) that meet the run's thresholds as escalated
    and create their depth agent; (1, events) when it was created."""
    limits = thresholds(playbook.options)
    picked = [
        (f, limits.reason(f.severity, f.confidence)) for f in found if f.rule != OUTPUT_CAP_RULE
    ]
    picked = [(f, why) for f, why in picked if why]
    if not picked:
        return 0, []
    # The most serious and least certain first: they are the ones worth a stronger model.
    picked.sort(key=lambda p: (-p[0].severity_rank, p[0].confidence, p[0].location))
    sent = [f for f, _ in picked[:MAX_ITEMS]]
    spec = playbook.roles[DEPTH_ROLE]
    model = spec.model or run.model
    payload: dict[str, Any] = {
        "items": len(sent),
        "reason": limits.describe(),
        "model": model,
        "depth_task": None,
    }
    if len(picked) > len(sent):
        payload["left"] = len(picked) - len(sent)
    key = task_key(VERIFY_STEP, task.lens, {"of": task.key}, run.snapshot_digest)
    refusal = ""
    if run.status != Run.Status.RUNNING:
        refusal = f"the run is {run.status}"
    elif Task.objects.filter(run=run).count() >= run.max_agents:
        refusal = f"max {run.max_agents} agents per run reached"
    elif Task.objects.filter(run=run, key=key).exists():
        # A re-run breadth agent: its first depth agent keeps its verdicts on the first try's
        # findings; the new ones stay as the breadth tier gave them.
        refusal = "this agent's depth agent already ran (a re-run is not verified again)"
    for finding, why in picked[: len(sent)]:
        finding.verdict = ESCALATED
        finding.verdict_reason = (
            f"escalated ({why}); not verified: {refusal}" if refusal else f"escalated ({why})"
        )
    if refusal:
        payload["refused"] = refusal
        return 0, [(EventType.TIER_ESCALATED, payload, task)]
    items = [item_of(number, f) for number, f in enumerate(sent, start=1)]
    child = Task.objects.create(
        run=run,
        parent=task,
        depth=task.depth + 1,
        key=key,
        step=VERIFY_STEP,
        role=DEPTH_ROLE,
        lens=task.lens,
        scope={"files": sorted({f.path for f in sent if f.path}), "items": items},
        scope_label=f"verify {count(len(items), 'item')} of {task.scope_label}"[:300],
        group=task.group,
        why=f"{count(len(items), 'item')} escalated ({limits.describe()})"[:500],
        provider=spec.provider or run.provider,
        model=model,
        critical=False,
        needs_approval=spec.needs_approval,
    )
    payload["depth_task"] = child.pk
    return 1, [task_created(child), (EventType.TIER_ESCALATED, payload, task)]


def apply_verdicts(task: Task, data: dict[str, Any]) -> list[EventItem]:
    """The depth agent's verdicts on its breadth agent's findings: a verdict only for an item it
    was given (model output is untrusted: ``clean_verdicts``); an item without a valid one
    stays as the breadth tier gave it, marked escalated and not verified."""
    items = list(task.scope.get("items") or [])
    verdicts = clean_verdicts(items, data.get("verdicts"))
    findings = list(
        Finding.objects.filter(
            task_id=task.parent_id or 0, fingerprint__in=[str(i.get("fingerprint")) for i in items]
        )
    )
    counts = {"confirmed": 0, "corrected": 0, "rejected": 0, "unverified": 0}
    for finding in findings:
        verdict = verdicts.get(finding.fingerprint)
        if verdict is None:
            counts["unverified"] += 1
            finding.verdict = ESCALATED
            finding.verdict_reason = "the depth agent gave no valid verdict on it"
            continue
        counts[verdict["verdict"]] += 1
        finding.tier = "depth"
        finding.verdict = verdict["verdict"]
        finding.verified_by_id = task.pk
        reason = verdict["reason"]
        if verdict["verdict"] == "corrected":
            reason += f" (breadth: {finding.severity}, {finding.confidence:.2f})"
            finding.severity = verdict["severity"]
            finding.confidence = verdict["confidence"]
        finding.verdict_reason = reason[:1000]
    Finding.objects.bulk_update(
        findings, ["tier", "verdict", "verdict_reason", "verified_by", "severity", "confidence"]
    )
    return [(EventType.TIER_VERIFIED, {**counts, "model": task.model}, task)]
