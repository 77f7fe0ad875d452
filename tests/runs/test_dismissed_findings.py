"""A new report version leaves out the findings a reviewer dismissed, and says how many."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from agents.playbooks import get_playbook
from runs.actions import review_finding
from runs.actions.report import reaggregate
from runs.models import Run
from tests.runs.factories import make_finding, make_report, make_run, make_task

pytestmark = pytest.mark.django_db
CONFIG = get_playbook("codebase-audit").to_config()


def _ids(report: Any) -> set[int]:
    return {i for cluster in report.clusters for i in cluster["finding_ids"]}


def test_reaggregating_leaves_out_dismissed_findings_and_notes_how_many(
    reviewer: User, operator: User, viewer_client: Client
) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW, config=CONFIG)
    make_report(run)
    task = make_task(run)
    kept, accepted, dropped = (
        make_finding(run, task, title=title, path=f"app/{i}.py")
        for i, title in enumerate(("Open redirect", "SQL injection", "Noise"))
    )
    review_finding(accepted, reviewer, "accepted")
    review_finding(dropped, reviewer, "dismissed", "a test fixture, not shipped")

    version = reaggregate(run, operator, chain=["dedup"])
    assert _ids(version) == {kept.pk, accepted.pk}
    assert "1 finding dismissed by a reviewer was left out of this version." in version.notes
    # The provenance marks what a reviewer accepted.
    page = viewer_client.get(reverse("runs:report", args=[run.pk, version.version]))
    row = page.content.decode().split(f'id="finding-{accepted.pk}"')[1].split("</tr>")[0]
    assert '<span class="review review-accepted"' in row
    assert f'id="finding-{dropped.pk}"' not in page.content.decode()

    # Nothing dismissed: no such note.
    other = make_run(operator, status=Run.Status.AWAITING_REVIEW, config=CONFIG)
    make_report(other)
    make_finding(other, make_task(other))
    assert not any("dismissed" in n for n in reaggregate(other, operator, chain=["dedup"]).notes)
