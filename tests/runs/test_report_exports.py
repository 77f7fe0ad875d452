"""Exports of a report version: SARIF valid against the 2.1.0 schema, Markdown and JSON inert
whatever the findings say, the management command, and who may download them."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from markdown_it import MarkdownIt

from runs.actions.report import aggregate
from runs.models import Report, Run
from tests.runs.factories import make_finding, make_run, make_task
from tests.runs.test_report_provenance import frozen_run  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

# The OASIS SARIF 2.1.0 schema (errata01), vendored so the test runs offline.
SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text())

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "<a href='javascript:alert(1)'>x</a>",
    "![x](https://evil.example/steal.png)",
    "<svg/onload=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "`</code><script>alert(1)</script>`",
    "| broken | table |\n<iframe src=//evil>",
    "<https://evil.example>",
    '"><script>alert(1)</script>',
    "```\n</pre><script>alert(1)</script>\n```",
]


@pytest.fixture
def reported(frozen_run: Run) -> Report:  # noqa: F811 (the imported fixture)
    run = frozen_run
    # Keep the demoted (fabricated) clusters too, so every payload reaches every export.
    run.config["options"]["min_confidence"] = 0.1
    run.save(update_fields=["config"])
    tasks = [make_task(run, lens="security"), make_task(run, lens="input")]
    for n, payload in enumerate(XSS):
        real = n % 3 == 0
        make_finding(
            run,
            tasks[n % 2],
            lens=payload[:100],
            title=payload[:200],
            detail=payload,
            evidence="request.GET" if real else payload,
            path="app/views.py" if real else f"app/{payload[:40]}.py",
            line_start=4,
            confidence=0.9,
        )
    # A model-written summary quoting the same payloads (a synthesis agent that succeeded).
    make_task(
        run,
        step="report",
        role="synthesizer",
        lens="synthesis",
        status="succeeded",
        summary="\n".join(XSS),
        output={"data": {"sent": {}}, "model": "gpt-4o-mini"},
    )
    aggregate(run.pk)
    return run.reports.get()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_markdown_export_is_inert_even_in_a_permissive_renderer(reported: Report) -> None:
    out = StringIO()
    call_command("export_report", reported.run_id, "--format", "markdown", stdout=out)
    # A reader's viewer may allow raw HTML: nothing from the findings may become markup there.
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(out.getvalue())
    parser = _Tags()
    parser.feed(html)
    allowed = {"h1", "h2", "h3", "p", "ul", "li", "code", "table", "thead", "tbody", "tr", "th"}
    allowed |= {"td", "a", "blockquote", "pre"}
    assert {tag for tag, _ in parser.tags} <= allowed
    for tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs)
        if tag == "a":
            assert (attrs.get("href") or "").startswith("/runs/")
    assert "alert(1)" in out.getvalue()  # shown as text, not dropped
    summary = out.getvalue().split("## Summary", 1)[1].split("## Findings", 1)[0]
    # Every payload is there, as escaped text or (when it holds an address) as a code span.
    assert "Written by gpt\\-4o\\-mini" in summary and summary.count("alert") >= 9


def test_the_model_summary_on_the_report_page_is_inert(
    reported: Report, viewer_client: Client
) -> None:
    html = viewer_client.get(f"/runs/{reported.run_id}/").content.decode()
    summary = html.split("<h2>Summary</h2>", 1)[1].split("<h2>", 1)[0]
    parser = _Tags()
    parser.feed(summary)
    assert {tag for tag, _ in parser.tags} <= {"p", "em", "blockquote", "ul", "li", "code", "pre"}
    assert "alert(1)" in summary


def test_json_export_has_provenance_and_no_raw_angle_brackets(
    reported: Report, viewer_client: Client
) -> None:
    url = f"/runs/{reported.run_id}/reports/{reported.version}/export.json"
    response = viewer_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    body = response.content.decode()
    assert "<" not in body and ">" not in body
    doc = json.loads(body)
    titles = {m["title"] for c in doc["clusters"] for m in c["members"]}
    assert "<script>alert(1)</script>" in titles  # escaped on the wire, exact once parsed
    member = doc["clusters"][0]["members"][0]
    assert set(member) >= {"finding_id", "task_id", "agent_url", "lens", "vote", "evidence_status"}
    assert member["agent_url"].startswith("http://testserver/runs/")
    assert doc["report"]["params"]["embedder"] == "tfidf-char"


def test_sarif_export_validates_against_the_2_1_0_schema(reported: Report) -> None:
    out = StringIO()
    call_command("export_report", reported.run_id, "--format", "sarif", stdout=out)
    sarif = json.loads(out.getvalue())
    jsonschema.Draft4Validator(SCHEMA).validate(sarif)
    results = sarif["runs"][0]["results"]
    assert results
    statuses = {r["properties"]["evidenceStatus"] for r in results}
    assert statuses == {"verified", "no_such_file"}
    for result in results:
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 4
        assert "<" not in result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]


def test_sarif_of_a_plain_run_validates_too() -> None:
    run = make_run(status=Run.Status.AGGREGATING)
    run.config = (
        __import__("agents.playbooks", fromlist=["x"]).get_playbook("codebase-audit").to_config()
    )
    run.save(update_fields=["config"])
    task = make_task(run)
    make_finding(run, task, title="SQL injection", severity="critical", rule="PY001")
    make_finding(run, task, title="Loose doc", path="", line_start=None)
    aggregate(run.pk)
    out = StringIO()
    call_command("export_report", run.pk, "--format", "sarif", stdout=out)
    sarif = json.loads(out.getvalue())
    jsonschema.Draft4Validator(SCHEMA).validate(sarif)
    (result,) = sarif["runs"][0]["results"]  # the finding without a file is not a code finding
    assert result["ruleId"] == "PY001"
    assert result["level"] == "error"


def test_export_command_refuses_unknown_runs_and_versions() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No run"):
        call_command("export_report", 987654, "--format", "json", stdout=StringIO())
    run = make_run()
    with pytest.raises(CommandError, match="no report"):
        call_command("export_report", run.pk, "--format", "json", stdout=StringIO())


# --- who may download ------------------------------------------------------------------------


def _urls(report: Report) -> list[str]:
    base = f"/runs/{report.run_id}/reports/{report.version}/"
    return [base, *(f"{base}export.{fmt}" for fmt in ("md", "json", "sarif"))]


def test_anonymous_visitors_are_sent_to_log_in(reported: Report) -> None:
    for url in _urls(reported):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_a_user_who_may_not_see_the_run_gets_404(
    reported: Report, make_user: Callable[..., User]
) -> None:
    client = Client()
    client.force_login(make_user())  # no role, did not launch this run
    for url in _urls(reported):
        assert client.get(url).status_code == 404


def test_viewers_get_every_export_and_the_provenance_page(
    reported: Report, viewer_client: Client
) -> None:
    for url in _urls(reported):
        assert viewer_client.get(url).status_code == 200
    page = viewer_client.get(_urls(reported)[0]).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert f"/runs/{reported.run_id}/agents/" in page
    missing = f"/runs/{reported.run_id}/reports/{reported.version}/export.exe"
    assert viewer_client.get(missing).status_code == 404
    assert viewer_client.get(f"/runs/{reported.run_id}/reports/99/").status_code == 404


def test_run_page_links_to_the_exports(reported: Report, viewer_client: Client) -> None:
    page = viewer_client.get(f"/runs/{reported.run_id}/").content.decode()
    assert f"/runs/{reported.run_id}/reports/{reported.version}/export.sarif" in page


def test_old_reports_without_members_export_with_provenance(
    viewer_client: Client, viewer: Any
) -> None:
    run = make_run(status=Run.Status.AWAITING_REVIEW)
    task = make_task(run)
    finding = make_finding(run, task)
    Report.objects.create(
        run=run,
        chain=["dedup"],
        clusters=[
            {
                "key": "k",
                "title": "t",
                "severity": "high",
                "confidence": 0.8,
                "path": "app/db.py",
                "line_start": 3,
                "line_end": 3,
                "rule": "",
                "lenses": ["security"],
                "detail": "",
                "evidence": "",
                "finding_ids": [finding.pk],
                "task_ids": [task.pk],
                "votes": 1,
                "kept": True,
            }
        ],
    )
    doc = json.loads(viewer_client.get(f"/runs/{run.pk}/reports/1/export.json").content)
    (member,) = doc["clusters"][0]["members"]
    assert member["finding_id"] == finding.pk and member["vote"] is True
