"""What a launch leaves in the snapshot store: an archive past the deployment's limits is refused
before it is read, a refused launch stores nothing, and each target has its own manifest."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runs.actions import LaunchError, launch_run
from runs.actions.report import aggregate
from runs.models import Event, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """This test's own data directory: its snapshot store starts empty."""
    settings.DATA_DIR = tmp_path / "data"
    with mock.patch("runs.actions.enqueue.send"):
        yield settings.DATA_DIR / "snapshots"


def stored(store: Path) -> list[Path]:
    """Every blob, manifest and staged file of the store (not its lock file)."""
    files = store.rglob("*") if store.exists() else []
    return sorted(p for p in files if p.is_file() and p != store / "lock")


def upload(entries: dict[str, bytes], name: str = "target.zip") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            archive.writestr(path, data)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def refused(**kwargs: Any) -> LaunchError:
    kwargs.setdefault("playbook", "codebase-audit")
    with pytest.raises(LaunchError) as info:
        launch_run(user=None, **kwargs)
    assert not Run.objects.exists() and not Event.objects.exists()
    return info.value


# --- absolute limits of an archive ------------------------------------------------------------


def test_a_padded_many_entry_bomb_is_refused_by_the_default_expanded_size(store: Path) -> None:
    # 120 source files of 999,000 bytes each (just under the per-entry ratio check) and random
    # padding: the archive compresses about 85:1, under the ratio limit, and expands to 120 MB.
    entries = {f"src/part{i}.py": b"a" * 999_000 + b"%d\n" % i for i in range(120)}
    entries["pad.bin"] = os.urandom(1_400_000)
    bomb = upload(entries, "bomb.zip")
    with mock.patch.object(zipfile.ZipFile, "open", side_effect=AssertionError("read")):
        error = refused(archive=bomb, options={"max_agents": 2000})
    assert error.field == "archive"
    assert "expands to more than 100,000,000 bytes (HARNESS_ARCHIVE_MAX_BYTES)" in str(error)
    assert stored(store) == []


def test_the_archive_limits_come_from_the_settings(store: Path, settings: Any) -> None:
    files = {f"app/m{i}.py": b"import os\nos.system(input())\n# %d\n" % i for i in range(6)}
    settings.HARNESS_ARCHIVE_MAX_ENTRIES = 5
    error = refused(archive=upload(files))
    assert "more than 5 entries (HARNESS_ARCHIVE_MAX_ENTRIES)" in str(error)
    settings.HARNESS_ARCHIVE_MAX_ENTRIES = 6
    settings.HARNESS_ARCHIVE_MAX_BYTES = 100
    error = refused(archive=upload(files))
    assert "more than 100 bytes (HARNESS_ARCHIVE_MAX_BYTES)" in str(error)
    assert stored(store) == []
    settings.HARNESS_ARCHIVE_MAX_BYTES = 10_000
    run = launch_run(user=None, playbook="codebase-audit", archive=upload(files))
    assert run.snapshot_info["files"] == 6


# --- a refused launch stores nothing ----------------------------------------------------------


def test_an_archive_refused_for_its_agent_count_leaves_no_blob_or_manifest(store: Path) -> None:
    files = {f"app/m{i}.py": b"import os\nos.system(input())\n# %d\n" % i for i in range(40)}
    error = refused(archive=upload(files), options={"max_agents": 3, "chunk_files": 1})
    assert "needs 120 agents but the run allows 3" in str(error)
    assert stored(store) == []


def test_a_directory_refused_by_its_plan_leaves_nothing(
    store: Path, tmp_path: Path, settings: Any
) -> None:
    docs = tmp_path / "roots" / "notes"
    docs.mkdir(parents=True)
    (docs / "a.md").write_text("# Notes\n")
    settings.HARNESS_TARGET_ROOTS = [tmp_path / "roots"]
    error = refused(target_path=str(docs))
    assert "reads source code" in str(error)
    assert stored(store) == []


def test_a_refused_launch_keeps_what_an_earlier_run_stored(
    store: Path, tmp_path: Path, settings: Any
) -> None:
    app = tmp_path / "roots" / "app"
    app.mkdir(parents=True)
    for i in range(4):
        (app / f"m{i}.py").write_text(f"import os\nos.system(input())  # {i}\n")
    settings.HARNESS_TARGET_ROOTS = [tmp_path / "roots"]
    run = launch_run(user=None, playbook="codebase-audit", target_path=str(app))
    before = stored(store)
    assert len(before) == 5  # four blobs and the manifest
    with pytest.raises(LaunchError):
        launch_run(
            user=None, playbook="codebase-audit", target_path=str(app), options={"max_agents": 1}
        )
    assert stored(store) == before
    assert list(Run.objects.all()) == [run]


# --- each target's own manifest ---------------------------------------------------------------


def test_a_report_states_only_its_own_targets_skipped_files(
    store: Path, tmp_path: Path, settings: Any
) -> None:
    roots = tmp_path / "roots"
    code = "import os\n\ndef run(request):\n    os.system(request.GET['cmd'])\n"
    for name in ("messy", "clean"):
        (roots / name).mkdir(parents=True)
        (roots / name / "views.py").write_text(code)
    (roots / "messy" / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    with open(bytes(roots / "messy") + b"/caf\xe9.md", "wb") as fh:
        fh.write(b"# notes\n")
    settings.HARNESS_TARGET_ROOTS = [roots]
    messy = launch_run(user=None, playbook="codebase-audit", target_path=str(roots / "messy"))
    clean = launch_run(user=None, playbook="codebase-audit", target_path=str(roots / "clean"))
    assert messy.snapshot_digest == clean.snapshot_digest  # the same kept content

    notes = {}
    for run in (messy, clean):
        Run.objects.filter(pk=run.pk).update(status=Run.Status.AGGREGATING)
        aggregate(run.pk)
        notes[run.target_label] = " ".join(run.reports.get().notes)
    assert "1 binary, 1 its name is not valid UTF-8" in notes["roots/messy"]
    assert "left out of the snapshot" not in notes["roots/clean"]
