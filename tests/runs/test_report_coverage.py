"""What a report says about its own reach: the third-party files the agents skipped, named with
their reasons in the report's text and in every export; and, for an offline codebase audit, the
classes the analyzer checks and those it cannot."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from agents.aggregation.coverage import CHECKED_CLASSES
from agents.aggregation.stages import RunFacts, run_chain
from agents.analysis.base import RULE_CWE
from agents.playbooks import get_playbook
from runs.actions.report import aggregate
from runs.models import Report, Run, Task
from tests.runs.factories import make_finding, make_run, make_task

pytestmark = pytest.mark.django_db

SKIPPED = [
    {"path": "static/js/jquery-3.6.0.js", "reason": "well-known third-party library"},
    {"path": "static/js/app-lib.js", "reason": "jQuery banner"},
]


def _export(run: Run, fmt: str) -> str:
    out = StringIO()
    call_command("export_report", run.pk, "--format", fmt, stdout=out)
    return out.getvalue()


def _audited(skipped: list[dict[str, str]] | None) -> Run:
    run = make_run(status=Run.Status.AGGREGATING)
    run.config = get_playbook("codebase-audit").to_config()
    run.save(update_fields=["config"])
    data = {"skipped": skipped} if skipped is not None else {}
    task = make_task(run, output={"summary": "done", "data": data})
    make_task(
        run,
        status=Task.Status.FAILED,
        output={"data": {"skipped": [{"path": "x/failed.js", "reason": "r"}]}},
    )
    make_finding(run, task, title="SQL injection", severity="high")
    aggregate(run.pk)
    return run


def test_report_names_the_files_skipped_as_third_party_code() -> None:
    run = _audited(SKIPPED)
    report = Report.objects.get(run=run)
    line = (
        "2 files skipped as third-party code (app-lib.js: jQuery banner; "
        "jquery-3.6.0.js: well-known third-party library)"
    )
    assert line in report.notes
    # The Markdown texts escape it (paths are set as code), the words stay.
    for text in (report.source_text, report.html, _export(run, "md")):
        assert "2 files skipped as third" in text and "party code" in text
        assert "app-lib.js:" in text and "jQuery banner" in text
    assert line in json.loads(_export(run, "json"))["report"]["notes"]
    # A failed agent's output is not a record of what was skipped.
    assert "failed.js" not in report.source_text


def test_no_line_when_nothing_was_skipped() -> None:
    run = _audited(None)
    report = Report.objects.get(run=run)
    assert not any("third-party code" in note for note in report.notes)
    assert "third-party code" not in report.source_text


# --- what the offline analyzer checks / cannot check -----------------------------------------


def test_offline_audit_report_states_what_it_checks_and_cannot() -> None:
    run = _audited(SKIPPED)
    report = Report.objects.get(run=run)
    assert "What the offline analyzer checks / cannot check" in report.source_text
    assert "<h2>What the offline analyzer checks / cannot check</h2>" in report.html
    for text in (report.source_text, report.html):
        assert "SQL injection" in text and "business logic" in text
        assert "most authorization" in text and "runtime configuration" in text
        assert "--provider openai" in text and "openai-compatible" in text
    # The exports carry it as one note (they rebuild their text from the report's notes).
    [note] = [n for n in report.notes if n.startswith("The offline analyzer checks")]
    assert f"checks {len(CHECKED_CLASSES)} classes" in note and "business logic" in note
    assert note in json.loads(_export(run, "json"))["report"]["notes"]
    assert "business logic" in _export(run, "md")


def test_the_checked_classes_are_the_analyzers_security_rules() -> None:
    assert set(CHECKED_CLASSES) == {r for r in RULE_CWE if r.startswith("sec.")}


def _facts(**overrides: Any) -> RunFacts:
    data: dict[str, Any] = dict(
        run_id=1,
        playbook="codebase-audit",
        playbook_title="Codebase audit",
        target="app",
        status="aggregating",
        provider="heuristic",
        is_llm=False,
        agents={"succeeded": 1, "failed": 0, "skipped": 0, "total": 1},
        cost_usd="0.00",
        budget_usd=None,
        unpriced_calls=0,
        tokens={"input": 0, "output": 0},
        skipped_files=[],
        failed_scopes=[],
        skipped_scopes=[],
        options={},
    )
    return RunFacts(**(data | overrides))


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({}, True),
        ({"is_llm": True, "provider": "openai"}, False),
        ({"playbook": "doc-review", "playbook_title": "Document review"}, False),
    ],
)
def test_coverage_section_only_for_offline_codebase_audits(
    overrides: dict[str, Any], shown: bool
) -> None:
    draft = run_chain([], _facts(**overrides), ["synthesis"])
    assert ("What the offline analyzer checks" in draft.markdown) is shown
    assert any(n.startswith("The offline analyzer checks") for n in draft.notes) is shown
