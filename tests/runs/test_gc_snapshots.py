"""``manage.py gc_snapshots`` and the sweeper remove the snapshots no run references, and spare
one stored moments ago for a launch that has not created its run yet."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from agents.snapshot import SnapshotManifest, freeze_directory, open_snapshot, snapshot_store
from harness_site.redis_client import get_redis
from runs.actions import launch, launch_run
from runs.actions.snapshots import gc_snapshots
from runs.engine import sweeper
from runs.models import Run
from tests.runs.factories import make_run

pytestmark = pytest.mark.django_db

CODE = "import os\n\ndef view(request):\n    os.system(request.GET['cmd'])\n"


@pytest.fixture
def roots(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """Targets under their own root, snapshots in this test's own data directory."""
    root = tmp_path / "roots"
    settings.HARNESS_TARGET_ROOTS = [root]
    settings.DATA_DIR = tmp_path / "data"
    with mock.patch("runs.actions.enqueue.send"):
        yield root


def target(root: Path, name: str, **files: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for path, text in files.items():
        (folder / path).write_text(text)
    return folder


def freeze(root: Path, folder: Path) -> SnapshotManifest:
    return freeze_directory(folder, [root], snapshot_store())


def age_store() -> None:
    when = time.time() - 2 * 3600
    for path in snapshot_store().rglob("*"):
        os.utime(path, (when, when))


def listed() -> set[str]:
    store = snapshot_store()
    return {p.stem for p in store.glob("manifests/*.json")} | {
        p.name for p in store.glob("objects/??/*")
    }


def command(*args: str) -> list[str]:
    out = StringIO()
    call_command("gc_snapshots", *args, stdout=out)
    return out.getvalue().splitlines()


def test_gc_snapshots_removes_only_what_no_run_references(roots: Path) -> None:
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target(roots, "app", **{"v.py": CODE})),
    )
    # A run from before manifests were keyed per target: it opens its manifest by its digest.
    old = freeze(roots, target(roots, "old", **{"v.py": CODE, "w.py": "x = 1\n"}))
    manifests = snapshot_store() / "manifests"
    (manifests / f"{old.key}.json").rename(manifests / f"{old.digest}.json")
    make_run(snapshot_digest=old.digest)
    # No run opens this one (its run deleted, say): it goes with the blob only it lists.
    orphan = freeze(roots, target(roots, "gone", **{"v.py": CODE, "only.py": "y = 2\n"}))
    only = orphan.files["only.py"]["sha256"]
    age_store()
    before = listed()

    lines = command("--dry-run")
    assert lines[:2] == [
        f"would remove manifest {orphan.key} "
        f"({(manifests / f'{orphan.key}.json').stat().st_size:,} bytes)",
        f"would remove blob {only} (6 bytes)",
    ]
    assert lines[2].startswith("gc_snapshots: would remove 1 manifest, 1 blob")
    assert "kept 2 manifests and 2 blobs" in lines[2]
    assert listed() == before

    assert command() == [lines[2].replace("would remove", "removed")]
    assert listed() == before - {orphan.key, only}
    assert open_snapshot(run.snapshot_ref).read_text("v.py") == CODE
    assert open_snapshot(old.digest).read_text("w.py") == "x = 1\n"
    assert command()[-1].startswith("gc_snapshots: removed 0 manifests, 0 blobs")


def test_a_snapshot_stored_for_a_launch_in_progress_is_kept(roots: Path) -> None:
    # The collection runs between the launch's snapshot commit and its run row.
    create_run = launch._create_run
    collected = []

    def collect_first(**kwargs: Any) -> Run:
        collected.append(gc_snapshots())
        return create_run(**kwargs)

    folder = target(roots, "app", **{"v.py": CODE})
    with mock.patch.object(launch, "_create_run", collect_first):
        run = launch_run(user=None, playbook="codebase-audit", target_path=str(folder))
    assert collected and not collected[0] and collected[0].kept_manifests == 1
    assert open_snapshot(run.snapshot_ref).read_text("v.py") == CODE


def test_a_stored_snapshot_no_run_references_goes_once_the_grace_is_over(roots: Path) -> None:
    orphan = freeze(roots, target(roots, "app", **{"v.py": CODE}))
    assert not gc_snapshots()  # the default grace: stored seconds ago
    assert command("--grace-seconds", "0")[-1].startswith("gc_snapshots: removed 1 manifest,")
    assert orphan.key not in listed()


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(CommandError, match="--grace-seconds must be 0 or more"):
        call_command("gc_snapshots", "--grace-seconds", "-1", stdout=StringIO())


@pytest.fixture
def gc_lease() -> Iterator[str]:
    key = f"{django_settings.HARNESS_REDIS_PREFIX}snapshot-gc"
    get_redis().delete(key)
    yield key
    get_redis().delete(key)


def test_the_sweeper_collects_once_a_period_across_workers(
    roots: Path, settings: Any, gc_lease: str
) -> None:
    orphan = freeze(roots, target(roots, "app", **{"v.py": CODE}))
    age_store()
    settings.HARNESS_SNAPSHOT_GC_S = 0  # off (as under tests by default)
    assert sweeper.collect_once("worker-a") is False
    assert orphan.key in listed()
    settings.HARNESS_SNAPSHOT_GC_S = 3600
    assert sweeper.collect_once("worker-a") is True
    assert listed() == set()
    assert sweeper.collect_once("worker-b") is False  # this period's collection is done
    assert 0 < get_redis().pttl(gc_lease) <= 3_600_000
