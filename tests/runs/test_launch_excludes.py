"""Excludes at launch: the defaults always apply unless turned off, a launch adds its own globs
(``exclude`` option, ``launch_run --exclude``, the form's field), what is left out is listed in
the snapshot with the reason, and the estimate plans exactly what the launch will."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from agents.snapshot import open_snapshot
from runs.actions import LaunchError, launch_run
from runs.actions.planning import plan_run
from runs.models import Run
from tests.runs.test_launch import form_data

pytestmark = pytest.mark.django_db

CODE = "def view(request):\n    return request.GET['q']\n"
LOCALES = ("de", "es", "fr", "it", "ja", "nl", "pt", "ru")


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A small Django-like app: three modules and a translation catalogue per locale."""
    root = tmp_path / "roots"
    app = root / "shop"
    (app / "shop").mkdir(parents=True)
    for name in ("views.py", "models.py", "admin.py"):
        (app / "shop" / name).write_text(CODE)
    for code in LOCALES:
        messages = app / "shop" / "locale" / code / "LC_MESSAGES"
        messages.mkdir(parents=True)
        (messages / "django.po").write_text(f'msgid "Shop"\nmsgstr "Shop ({code})"\n')
        (messages / "django.mo").write_bytes(b"\xde\x12\x04\x95\x00\x00")
    (app / "poetry.lock").write_text('[[package]]\nname = "django"\n')
    settings.HARNESS_TARGET_ROOTS = [root]
    settings.DATA_DIR = tmp_path / "data"
    with mock.patch("runs.actions.enqueue.send"):
        yield app


def planned(run: Run) -> int:
    plan_run(run.pk)
    return run.tasks.count()


def skipped(run: Run) -> dict[str, str]:
    manifest = open_snapshot(run.snapshot_ref).manifest
    return {item["path"]: item["reason"] for item in manifest.skipped}


def audit(target: Path, **options: Any) -> Run:
    return launch_run(
        user=None, playbook="codebase-audit", target_path=str(target), options=options or None
    )


def test_translation_catalogues_and_lock_files_are_left_out_by_default(target: Path) -> None:
    run = audit(target)
    assert run.config["options"]["exclude"] == []
    assert run.config["options"]["default_excludes"] is True
    reasons = skipped(run)
    assert reasons["shop/locale/fr/LC_MESSAGES/django.po"] == (
        "excluded by default: translation catalogue"
    )
    assert reasons["poetry.lock"] == "excluded by default: lock file"
    assert set(open_snapshot(run.snapshot_ref).manifest.files) == {
        "shop/views.py",
        "shop/models.py",
        "shop/admin.py",
    }
    assert planned(run) == 3  # one chunk x three lenses

    everything = audit(target, default_excludes=False)
    assert not any(r.startswith("excluded") for r in skipped(everything).values())
    assert planned(everything) > 3


def test_a_launchs_own_globs_are_listed_with_the_glob(target: Path) -> None:
    run = audit(target, exclude=["shop/admin.py", "shop/models.*"])
    reasons = skipped(run)
    assert reasons["shop/admin.py"] == "excluded by --exclude 'shop/admin.py'"
    assert reasons["shop/models.py"] == "excluded by --exclude 'shop/models.*'"
    assert run.config["options"]["exclude"] == ["shop/admin.py", "shop/models.*"]


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"exclude": ["!"]}, "exclude", "Exclude '!' is not a valid glob."),
        ({"exclude": 3}, "exclude", "Excludes must be globs"),
        ({"default_excludes": "maybe"}, "default_excludes", "must be true or false"),
        ({"exclude": ["*.py", "*.lock"]}, "target", "Nothing to analyse in directory"),
    ],
)
def test_bad_excludes_are_refused_on_their_field_and_create_nothing(
    target: Path, options: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(LaunchError) as info:
        audit(target, **options)
    assert info.value.field == field
    assert message in str(info.value)
    assert not Run.objects.exists()


def test_the_form_fields_reach_the_run(target: Path, operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(target=str(target), exclude="shop/admin.py\n\n*.txt", no_default_excludes="on"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    options = Run.objects.get().config["options"]
    assert options["exclude"] == ["shop/admin.py", "*.txt"]
    assert options["default_excludes"] is False


def test_a_bad_glob_in_the_form_is_an_error_on_its_field(
    target: Path, operator_client: Client
) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(target=str(target), exclude="!")
    )
    assert response.status_code == 400
    errors = response.content.decode().split('name="exclude"', 1)[1][:1500]
    assert "errorlist" in errors and "is not a valid glob" in errors
    assert not Run.objects.exists()


def test_the_estimate_plans_what_the_launch_will_and_says_what_was_excluded(
    target: Path, operator_client: Client
) -> None:
    def estimate(**params: Any) -> str:
        query = {"playbook": "codebase-audit", "target": str(target), "provider": "heuristic"}
        response = operator_client.post(
            reverse("runs:estimate"), {**query, **params}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
        return response.content.decode()

    def agents(html: str) -> int:
        match = re.search(r'data-agents="(\d+)"', html)
        assert match, html
        return int(match.group(1))

    default = estimate()
    assert agents(default) == planned(audit(target)) == 3
    assert "17 excluded from the snapshot" in default  # 8 .po, 8 .mo, poetry.lock
    assert "16 translation catalogue" in default and "1 lock file" in default
    narrower = estimate(exclude="shop/admin.py")
    assert agents(narrower) == planned(audit(target, exclude=["shop/admin.py"]))
    everything = estimate(no_default_excludes="on")
    assert agents(everything) == planned(audit(target, default_excludes=False)) > 3
    assert "excluded" not in everything.split('id="launch-estimate"', 1)[1].split("</section>")[0]


def test_launch_run_takes_exclude_globs_and_can_turn_the_defaults_off(target: Path) -> None:
    out = StringIO()
    with mock.patch("runs.management.commands.launch_run._queue_has_consumer", return_value=True):
        call_command(
            "launch_run",
            "--playbook=codebase-audit",
            f"--target={target}",
            "--set=exclude=docs/",  # a --set exclude comes first
            "--exclude",
            "shop/admin.py",
            "shop/locale/de/",
            "--exclude",
            "*.mo",
            "--no-default-excludes",
            "--json",
            stdout=out,
        )
    run = Run.objects.get(pk=json.loads(out.getvalue())["run_id"])
    assert run.config["options"]["exclude"] == [
        "docs/",
        "shop/admin.py",
        "shop/locale/de/",
        "*.mo",
    ]
    assert run.config["options"]["default_excludes"] is False
    reasons = skipped(run)
    assert reasons["shop/locale/de"] == "excluded by --exclude 'shop/locale/de/'"
    assert reasons["shop/locale/fr/LC_MESSAGES/django.mo"] == "excluded by --exclude '*.mo'"
    assert "shop/locale/fr/LC_MESSAGES/django.po" in open_snapshot(run.snapshot_ref).manifest.files


def test_launching_samples_itself_leaves_its_answer_keys_out(
    operator_client: Client, settings: Any, tmp_path: Path
) -> None:
    # The form offers the samples folder itself; its answer keys (every planted problem of a
    # sample target) sit in it, beside their targets, and no auditor may read them.
    settings.HARNESS_TARGET_ROOTS = [settings.BASE_DIR / "samples"]
    settings.DATA_DIR = tmp_path / "data"
    keys = sorted(p.name for p in (settings.BASE_DIR / "samples").glob("*.expected.json"))
    assert keys  # the sample targets do have answer keys
    assert 'value="samples/"' in operator_client.get(reverse("runs:launch")).content.decode()
    with mock.patch("runs.actions.enqueue.send"):
        response = operator_client.post(reverse("runs:launch"), form_data(target="samples/"))
    assert response.status_code == 302, response.content.decode()[:2000]
    run = Run.objects.get()
    files = open_snapshot(run.snapshot_ref).manifest.files
    assert any(f.startswith("vulnerable_app/") for f in files)
    assert not [f for f in files if f.endswith(".expected.json")]
    assert {key: "excluded by default: answer key" for key in keys}.items() <= skipped(run).items()
