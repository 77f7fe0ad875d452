"""A run names its target relative to the allowed root it lives under (or by its basename):
the server's absolute path never reaches a title, an event, a page or an export. Spans carry
the full path only when content capture is on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from agents.snapshot import target_label
from runs.actions import LaunchError, launch_run
from runs.actions.planning import plan_run
from runs.actions.report import aggregate
from runs.models import Run, Span
from tests.runs.factories import make_finding

pytestmark = pytest.mark.django_db

VIEWS = "from django.db import connection\n\n\ndef find(request):\n    return request.GET['q']\n"


@pytest.fixture
def server_root(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """An allowed root deep in the server's file system, with one code target inside it."""
    root = tmp_path / "srv" / "harness" / "targets"
    (root / "team" / "shop" / "app").mkdir(parents=True)
    (root / "team" / "shop" / "app" / "views.py").write_text(VIEWS)
    settings.HARNESS_TARGET_ROOTS = [root]
    settings.DATA_DIR = tmp_path / "data"
    with mock.patch("runs.actions.enqueue.send"):
        yield root


def _launch(path: Path) -> Run:
    return launch_run(user=None, playbook="codebase-audit", target_path=str(path))


def _reported_run(root: Path) -> Run:
    """Launched in-process from the absolute path, planned, one finding per agent, aggregated."""
    run = _launch(root / "team" / "shop")
    plan_run(run.pk)
    for task in run.tasks.all():
        make_finding(run, task, lens=task.lens, path="app/views.py", line_start=5)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.AGGREGATING)
    aggregate(run.pk)
    run.refresh_from_db()
    return run


def test_the_label_is_relative_to_the_allowed_root(server_root: Path) -> None:
    run = _launch(server_root / "team" / "shop")
    assert run.target_label == "targets/team/shop"
    assert run.snapshot_info["source"] == "directory targets/team/shop"
    # The root itself, and a single document, are named the same way.
    assert _launch(server_root).target_label == "targets"
    assert _launch(server_root / "team" / "shop" / "app" / "views.py").target_label == (
        "targets/team/shop/app/views.py"
    )


def test_no_absolute_path_in_the_title_events_pages_or_any_export(
    server_root: Path, viewer_client: Client
) -> None:
    run = _reported_run(server_root)
    secret = str(server_root.parent)  # /tmp/…/srv/harness: where the server keeps targets
    report = run.reports.get()
    assert report.source_text.splitlines()[0] == "# Codebase audit: targets/team/shop"
    assert secret not in report.source_text and secret not in report.html
    payloads = json.dumps([event.payload for event in run.events.all()])
    assert "targets/team/shop" in payloads and secret not in payloads
    assert secret not in json.dumps(run.snapshot_info)
    for fmt in ("md", "json", "sarif"):
        out = StringIO()
        call_command("export_report", str(run.pk), "--format", fmt, stdout=out)
        assert "targets/team/shop" in out.getvalue(), fmt
        assert secret not in out.getvalue(), fmt
        page = viewer_client.get(reverse("runs:report_export", args=[run.pk, report.version, fmt]))
        assert page.status_code == 200 and secret not in page.content.decode(), fmt
    for url in (
        run.get_absolute_url(),
        reverse("runs:report", args=[run.pk, report.version]),
        reverse("runs:list"),
        reverse("runs:events", args=[run.pk]),
    ):
        html = viewer_client.get(url).content.decode()
        assert secret not in html, url
    assert "targets/team/shop" in viewer_client.get(run.get_absolute_url()).content.decode()


def test_spans_carry_the_full_path_only_under_content_capture(
    server_root: Path, settings: Any
) -> None:
    target = server_root / "team" / "shop"
    plain = _launch(target)
    attributes = json.dumps([s.attributes for s in Span.objects.filter(run=plain)])
    assert '"harness.target": "targets/team/shop"' in attributes
    assert str(server_root) not in attributes

    settings.HARNESS_CAPTURE_CONTENT = True
    captured = _launch(target)
    launch = Span.objects.get(run=captured, name="launch codebase-audit")
    assert launch.attributes["harness.target"] == "targets/team/shop"
    assert launch.attributes["harness.target.path"] == str(target.resolve())


def test_a_refusal_names_a_target_inside_the_roots_relatively(server_root: Path) -> None:
    empty = server_root / "team" / "empty"
    empty.mkdir()
    (empty / "blob.bin").write_bytes(b"\x00\x01")
    with pytest.raises(LaunchError) as info:
        _launch(empty)
    assert "targets/team/empty" in str(info.value)
    assert str(server_root) not in str(info.value)
    with pytest.raises(LaunchError) as info:
        _launch(server_root / "team" / "missing")
    assert str(info.value) == "Target 'targets/team/missing' does not exist."


def test_nested_roots_name_a_target_from_the_innermost(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    (inner / "repo").mkdir(parents=True)
    assert target_label(inner / "repo", [outer, inner]) == "inner/repo"
    assert target_label(outer / "inner", [outer]) == "outer/inner"
    # Under no root (refused at freezing anyway): the basename, never the whole path.
    assert target_label(tmp_path / "elsewhere", [outer]) == "elsewhere"
