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
