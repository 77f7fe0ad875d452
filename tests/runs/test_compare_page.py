"""The report page compares two versions of a run's report."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from runs.models import Report
from tests.agents.test_compare_versions import item
from tests.runs.factories import make_run


@pytest.mark.django_db
def test_the_report_page_compares_two_versions(viewer_client: Any, operator: Any) -> None:
    run = make_run(operator, status="awaiting_review")
    Report.objects.create(run=run, version=1, clusters=[item(1, "Shell injection", [4])])
    Report.objects.create(
        run=run, version=2, clusters=[item(1, "<b>SQL</b> injection", [9])], chain=["dedup"]
    )
    url = reverse("runs:report", args=[run.pk, 2])
    html = viewer_client.get(url, {"compare": "1"}).content.decode()
    assert "v1 → v2" in html and "1 added · 1 dropped" in html
    assert "&lt;b&gt;SQL&lt;/b&gt; injection" in html
    for junk in ("x", "2", "99"):
        assert 'id="comparison"' not in viewer_client.get(url, {"compare": junk}).content.decode()


def test_every_stat_a_report_draft_can_carry_fits_the_report_created_event() -> None:
    # A draft with everything: a fabricated location, an agent's output-cap note.
    from agents.aggregation.stages import OUTPUT_CAP_RULE, run_chain
    from runs.eventlog.event_types import EventType, check_payload
    from tests.agents.test_aggregation import CHAIN, facts, row

    class Snapshot:
        def read_text(self, path: str) -> str:
            return "x = 1\n"

    rows = [
        row(1, line=1, evidence="x = 1"),
        row(2, path="app/other.py", line=999, rule="R2", title="Ghost"),
        row(3, rule=OUTPUT_CAP_RULE, title="3 findings dropped at the output limit"),
    ]
    draft = run_chain(rows, facts(), CHAIN, None, Snapshot())
    assert {"fabricated", "dropped_at_output_limit"} <= set(draft.stats)
    check_payload(EventType.REPORT_CREATED, {"version": 1, **draft.stats})


@pytest.mark.django_db
def test_the_versions_side_by_side_say_a_dropped_item_was_dismissed(
    viewer_client: Any, operator: Any
) -> None:
    from tests.runs.factories import make_finding, make_task

    run = make_run(operator, status="awaiting_review")
    finding = make_finding(run, make_task(run), review="dismissed")
    Report.objects.create(
        run=run,
        version=1,
        clusters=[item(1, "Shell injection", [finding.pk]) | {"key": "k-shell"}],
    )
    Report.objects.create(
        run=run, version=2, clusters=[item(1, "Weak hash", [finding.pk + 1]) | {"key": "k-hash"}]
    )
    html = viewer_client.get(reverse("runs:report", args=[run.pk, 2]), {"compare": "1"})
    page = html.content.decode()
    assert 'was #1 <span class="why">(dismissed by a reviewer)</span>' in page
    older = page.split('class="side side-older')[1].split("</ol>")[0]
    newer = page.split('class="side side-newer')[1].split("</ol>")[0]
    assert "mark-dropped" in older and f"/runs/{run.pk}/reports/1/#cluster-k-shell" in older
    assert "mark-added" in newer and f"/runs/{run.pk}/reports/2/#cluster-k-hash" in newer
