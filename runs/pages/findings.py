"""Findings in the report's order, wherever they are listed (the Findings page, the run page's
panel, an agent's page): the items the latest report version kept, by their rank, then every
other finding (none reported yet, a dropped item, found after the report) by the rule the
report ranks by (``agents.analysis.ranking.rank_key``: lens, severity, weakness class,
confidence). Newest first would put a style nit found last above the injection found first.

The order is computed over light rows (five columns) of the findings in question and the page
shown is then loaded by id, so a paginated list stays in order across its pages.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet

from agents.analysis.ranking import rank_key
from runs.models import Finding, Report, Run

UNRANKED = sys.maxsize


def report_ranks(run: Run) -> dict[int, int]:
    """Finding id → rank in the run's latest report version; {} before the first."""
    return ranks_of(run.reports.order_by("-version").first())


def ranks_of(report: Report | None) -> dict[int, int]:
    return report.finding_ranks() if report is not None else {}


def ranked_ids(findings: QuerySet[Finding], ranks: dict[int, int]) -> list[int]:
    """The ids of ``findings``, most urgent first (ties: the older first)."""
    rows = findings.order_by().values_list("id", "lens", "severity", "cwe", "confidence")

    def key(row: tuple[Any, ...]) -> tuple[int, ...]:
        pk, lens, severity, cwe, confidence = row
        return (ranks.get(pk, UNRANKED), *rank_key(lens, severity, cwe, confidence), pk)

    return [row[0] for row in sorted(rows, key=key)]


def load_ranked(
    ids: Iterable[int], ranks: dict[int, int], findings: QuerySet[Finding] | None = None
) -> list[Finding]:
    """The findings of ``ids`` in that order, each with ``report_rank`` (None: not ranked)."""
    ids = list(ids)
    by_id = (findings if findings is not None else Finding.objects.all()).in_bulk(ids)
    out = []
    for pk in ids:
        finding = by_id.get(pk)
        if finding is not None:
            finding.report_rank = ranks.get(pk)  # type: ignore[attr-defined]
            out.append(finding)
    return out


PER_PAGE = 100


def findings_context(run: Run, params: dict[str, str]) -> dict[str, Any]:
    """The Findings page: every finding of the run in the report's order (the ids of every
    finding are ranked, then only the page's rows are loaded), narrowed by severity."""
    rows = run.findings.all()
    severity = params.get("severity", "")
    if severity in Finding.Severity.values:
        rows = rows.filter(severity=severity)
    else:
        severity = ""
    ranks = report_ranks(run)
    page = Paginator(ranked_ids(rows, ranks), PER_PAGE).get_page(params.get("page"))
    return {
        "run": run,
        "page": page,
        "findings": load_ranked(page.object_list, ranks, rows),
        "severity": severity,
        "severities": Finding.Severity.choices,
        "query_prefix": f"severity={severity}&" if severity else "",
    }
