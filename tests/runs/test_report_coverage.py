"""What a report says about its own reach: the third-party files the agents skipped, named with
their reasons in the report's text and in every export."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

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
