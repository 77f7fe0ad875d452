"""Aggregating a run stores each cluster's provenance and what produced the version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

from agents.playbooks import get_playbook
from agents.snapshot import freeze_directory, snapshot_store
from runs.actions.report import aggregate
from runs.models import Approval, Run
from tests.runs.factories import make_finding, make_run, make_task

pytestmark = pytest.mark.django_db

VIEWS = (
    "import db\n\ndef profile(request):\n"
    "    user_id = request.GET['user_id']\n    return db.q(user_id)\n"
)


@pytest.fixture
def frozen_run(tmp_path: Path) -> Any:
    target = tmp_path / "target"
    (target / "app").mkdir(parents=True)
    (target / "app" / "views.py").write_text(VIEWS)
    with override_settings(DATA_DIR=tmp_path / "data"):
        manifest = freeze_directory(target, [tmp_path], snapshot_store())
        yield make_run(
            status=Run.Status.AGGREGATING,
            snapshot_digest=manifest.digest,
            snapshot_key=manifest.key,
            config=get_playbook("codebase-audit").to_config(),
        )


def test_aggregate_stores_members_votes_lenses_and_evidence(frozen_run: Run) -> None:
    run = frozen_run
    one, two, three = (make_task(run, lens=lens) for lens in ("security", "input", "security"))
    a = make_finding(
        run, one, title="missing input validation on user_id", path="app/views.py", line_start=4
    )
    b = make_finding(
        run,
        two,
        lens="input",
        title="no sanitization of the user_id field",
        path="app/views.py",
        line_start=4,
        evidence="request.GET['user_id']",
    )
    ghost = make_finding(run, three, title="Remote code execution", path="app/ghost.py")
    aggregate(run.pk)
    report = run.reports.get()
    by_ids = {tuple(c["finding_ids"]): c for c in report.clusters}
    merged = by_ids[(a.pk, b.pk)]
    assert merged["votes"] == 2
    assert merged["lenses"] == ["input", "security"]
    assert merged["evidence_status"] == "verified"
    assert {m["task_id"] for m in merged["members"]} == {one.pk, two.pk}
    assert all(m["vote"] for m in merged["members"])
    fake = by_ids[(ghost.pk,)]
    assert fake["evidence_status"] == "no_such_file"
    assert report.params["embedder"] == "tfidf-char"
    assert report.params["evidence_checked"] is True
    assert report.stats["fabricated"] == 1


def _two_wordings(run: Run) -> None:
    one, two = make_task(run, lens="security"), make_task(run, lens="input")
    make_finding(
        run, one, title="missing input validation on user_id", path="app/views.py", line_start=4
    )
    make_finding(
        run, two, title="no sanitization of the user_id field", path="app/views.py", line_start=4
    )


def test_operator_reaggregates_with_another_threshold_into_a_new_version(
    frozen_run: Run, operator_client: Client
) -> None:
    run = frozen_run
    _two_wordings(run)
    aggregate(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    response = operator_client.post(
        f"/runs/{run.pk}/reports/new/", {"dedup_threshold": "0.95", "chain": ["dedup", "synthesis"]}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/reports/2/"
    v1, v2 = run.reports.order_by("version")
    assert len(v1.clusters) == 1 and len(v2.clusters) == 2
    assert v2.chain == ["dedup", "synthesis"]
    assert v2.params["dedup_threshold"] == 0.95
    assert v2.params["requested_by"].startswith("operator")
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW
    pending = run.approvals.get(gate=Approval.Gate.REPORT, decision=Approval.Decision.PENDING)
    assert pending.target_id == v2.pk
    page = operator_client.get(response["Location"]).content.decode()
    assert "threshold 0.95" in page and f"/runs/{run.pk}/reports/1/" in page


def test_viewers_may_not_reaggregate(frozen_run: Run, viewer_client: Client) -> None:
    _two_wordings(frozen_run)
    aggregate(frozen_run.pk)
    response = viewer_client.post(f"/runs/{frozen_run.pk}/reports/new/", {})
    assert response.status_code == 403
    assert frozen_run.reports.count() == 1


def test_a_run_still_working_cannot_be_reaggregated(operator_client: Client) -> None:
    run = make_run(config=get_playbook("codebase-audit").to_config())
    response = operator_client.post(f"/runs/{run.pk}/reports/new/", {}, follow=True)
    assert "Re-aggregation refused" in response.content.decode()
    assert not run.reports.exists()
