"""Findings are listed in the report's rank wherever they are listed (the Findings page, the run
page's panel, the agent page), not newest first: the latest version's kept items by rank, then
the rest by the rule the report ranks by. The report's table names each finding's CWE."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Finding, Report, Run, Task
from runs.pages import findings as findings_page
from tests.runs.factories import make_finding, make_run, make_task

pytestmark = pytest.mark.django_db


def _titles(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


FINDINGS_PAGE = r"<td><b>(T\d)</b>"
PANEL = r'<div class="finding-title">(T\d)</div>'


def _cluster(rank: int, findings: list[Finding], kept: bool = True) -> dict[str, Any]:
    return {
        "key": f"c{rank}",
        "title": findings[0].title,
        "severity": findings[0].severity,
        "kept": kept,
        "rank": rank if kept else 0,
        "finding_ids": [f.pk for f in findings],
        "task_ids": sorted({f.task_id for f in findings}),
    }


@pytest.fixture
def ranked(operator: User) -> dict[str, Any]:
    """Five findings, oldest first T1..T5, and a report that ranks T3 first, then the cluster
    of T1 and T5 (T5 the more severe), and dropped T2; T4 came after the report."""
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    task = make_task(run)
    f = {
        n: make_finding(run, task, title=f"T{n}", severity=sev, lens="security")
        for n, sev in [(1, "low"), (2, "critical"), (3, "medium"), (4, "high"), (5, "high")]
    }
    Report.objects.create(
        run=run,
        version=1,
        clusters=[_cluster(1, [f[2]])],  # an older version: only the latest counts
    )
    Report.objects.create(
        run=run,
        version=2,
        clusters=[
            _cluster(2, [f[1], f[5]]),
            _cluster(1, [f[3]]),
            _cluster(9, [f[2]], kept=False),
        ],
    )
    return {"run": run, "task": task, "f": f}


def test_the_findings_page_lists_them_in_the_reports_rank(
    viewer_client: Client, ranked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ranked["run"]
    url = reverse("runs:findings", args=[run.pk])
    html = viewer_client.get(url).content.decode()
    # Ranked: T3 (#1), then #2's findings by the report's rule (T5 high before T1 low), then
    # those outside a kept item by the same rule (T2 critical before T4 high).
    assert _titles(html, FINDINGS_PAGE) == ["T3", "T5", "T1", "T2", "T4"]
    assert "#1</td>" in html and "#2</td>" in html  # the report's rank is shown
    # Pages continue the same order.
    monkeypatch.setattr(findings_page, "PER_PAGE", 2)
    pages = [viewer_client.get(url, {"page": n}).content.decode() for n in (1, 2, 3)]
    assert [_titles(p, FINDINGS_PAGE) for p in pages] == [["T3", "T5"], ["T1", "T2"], ["T4"]]
    # A severity filter keeps the order among what is left.
    html = viewer_client.get(url, {"severity": "high"}).content.decode()
    assert _titles(html, FINDINGS_PAGE) == ["T5", "T4"]


def test_the_run_pages_panel_lists_them_in_the_reports_rank(
    viewer_client: Client, ranked: dict[str, Any]
) -> None:
    html = viewer_client.get(ranked["run"].get_absolute_url()).content.decode()
    panel = html.split('id="run-findings"', 1)[1].split("</section>", 1)[0]
    assert _titles(panel, PANEL) == ["T3", "T5", "T1", "T2", "T4"]


def test_the_agent_page_lists_them_in_the_reports_rank(
    viewer_client: Client, ranked: dict[str, Any]
) -> None:
    run, task = ranked["run"], ranked["task"]
    html = viewer_client.get(reverse("runs:task", args=[run.pk, task.pk])).content.decode()
    assert _titles(html, PANEL) == ["T3", "T5", "T1", "T2", "T4"]


def test_before_any_report_they_are_ranked_by_the_reports_rule(
    viewer_client: Client, operator: User
) -> None:
    """Most urgent first, not newest: security before reliability before maintainability,
    then severity, then the weakness class (injection above a weak hash), then confidence."""
    run = make_run(operator)
    task = make_task(run, status=Task.Status.RUNNING, finished_at=None)
    for title, lens, severity, cwe, confidence in [
        ("T1", "maintainability", "critical", None, 0.9),
        ("T2", "security", "high", 328, 0.9),
        ("T3", "security", "high", 89, 0.5),
        ("T4", "reliability", "high", None, 0.9),
        ("T5", "security", "critical", None, 0.4),
        ("T6", "security", "high", 89, 0.7),
    ]:
        make_finding(
            run, task, title=title, lens=lens, severity=severity, cwe=cwe, confidence=confidence
        )
    order = ["T5", "T6", "T3", "T2", "T4", "T1"]
    html = viewer_client.get(reverse("runs:findings", args=[run.pk])).content.decode()
    assert _titles(html, FINDINGS_PAGE) == order
    html = viewer_client.get(run.get_absolute_url()).content.decode()
    assert _titles(html.split('id="run-findings"', 1)[1], PANEL) == order


def test_the_reports_table_names_each_findings_cwe_with_a_link(
    viewer_client: Client, ranked: dict[str, Any]
) -> None:
    run, f = ranked["run"], ranked["f"]
    Finding.objects.filter(pk=f[3].pk).update(cwe=89)
    html = viewer_client.get(reverse("runs:report", args=[run.pk, 2])).content.decode()
    row = html.split(f'id="finding-{f[3].pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'href="https://cwe.mitre.org/data/definitions/89.html"' in row and "CWE-89" in row
    assert html.count("cwe.mitre.org") == 1  # the others have none
