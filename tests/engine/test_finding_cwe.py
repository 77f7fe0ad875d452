"""Findings keep their CWE in a column: the analyzer's own, or one a model names in its text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.contract import AgentFinding, AgentOutput, AgentResult, Usage
from agents.playbooks import get_playbook
from runs.actions import completion, enqueue, launch_run
from runs.actions.planning import plan_run
from runs.models import Finding, Task
from tests.engine.helpers import make_target
from tests.engine.test_budget_extension import _drain, _now

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_analyzers_findings_are_stored_with_their_cwe(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    _now(monkeypatch)
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(make_target(tmp_path.resolve(), 1)),
        options={"chunk_files": 1},
    )
    plan_run(run.pk)
    _drain(run)
    security = Finding.objects.filter(run=run, lens="security")
    by_line = {f.line_start: f.cwe for f in security}
    assert by_line[12] == 78  # subprocess.run(cmd, shell=True)
    assert by_line[13] == 89  # "... WHERE id = %s" % request.args["id"]
    assert all(f.cwe for f in security), [(f.title, f.cwe) for f in security if not f.cwe]
    assert Finding.objects.get(run=run, line_start=12, lens="security").cwe_label == "CWE-78"


def test_a_models_finding_keeps_the_cwe_it_names_or_none(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
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
        AgentFinding(title="XSS", detail="Reflected input (see CWE-79).", path="a.py"),
        AgentFinding(title="Given", detail="no id in the text", cwe=502, path="b.py"),
        AgentFinding(title="Style", detail="long function", path="c.py"),
    ]
    result = AgentResult(AgentOutput(findings=outs), Usage(), "m", "openai")
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    task.refresh_from_db()
    assert completion.complete_task(task, result, get_playbook("codebase-audit"))
    stored = {f.title: f.cwe for f in Finding.objects.filter(task=task)}
    assert stored == {"XSS": 79, "Given": 502, "Style": None}
