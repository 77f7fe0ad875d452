"""The run's findings count (the run page's tile, the API, ``launch_run --json``) counts what
its report counts: an agent's output-limit note is not a finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.aggregation.stages import OUTPUT_CAP_RULE
from agents.contract import AgentFinding, AgentOutput, AgentResult, Usage
from agents.playbooks import get_playbook
from runs.actions import completion, enqueue, launch_run
from runs.actions.planning import plan_run
from runs.actions.tries import new_try
from runs.models import Finding, Run, Task
from tests.engine.helpers import make_target

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_output_limit_note_is_not_counted_as_a_finding(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, operator_client: Client
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    run = launch_run(
        user=None, playbook="codebase-audit", target_path=str(make_target(tmp_path.resolve(), 1))
    )
    plan_run(run.pk)
    task = Task.objects.filter(run=run).first()
    assert task is not None
    outs = [
        AgentFinding(title="SQL built from input", severity="high", path="a.py", rule="sec.sql"),
        AgentFinding(title="Long function", severity="low", path="b.py", rule="mnt.long"),
        AgentFinding(
            title="3 findings dropped at the output limit",
            severity="info",
            path="a.py",
            rule=OUTPUT_CAP_RULE,
        ),
    ]
    result = AgentResult(AgentOutput(findings=outs), Usage(), "m", "openai")
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    task.refresh_from_db()
    assert completion.complete_task(task, result, get_playbook("codebase-audit"))
    assert Finding.objects.filter(run=run).count() == 3  # the note is stored: the critique reads it
    run.refresh_from_db()
    assert run.findings_count == 2
    page = operator_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert 'data-stat="findings">2<' in page
    # A new try takes back what the earlier one counted, and only that.
    new_try(run, [Task.objects.get(pk=task.pk)], Task.Status.SUCCEEDED)
    assert Run.objects.get(pk=run.pk).findings_count == 0
