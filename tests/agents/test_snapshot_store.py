"""The snapshot store over time: a freeze refused before its commit stores nothing, each target
has its own manifest (its own skipped list) while identical content is stored once, and a
collection removes what no run references without racing a freeze."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from agents.snapshot import (
    Snapshot,
    SnapshotError,
    SnapshotManifest,
    collect_garbage,
    freeze_archive,
    freeze_directory,
)
from agents.snapshot.base import Store


class Refused(Exception):
    pass


def stored(store: Path) -> list[Path]:
    """Every blob, manifest and staged file of the store (not its lock file)."""
    files = store.rglob("*") if store.exists() else []
    return sorted(p for p in files if p.is_file() and p != store / "lock")


def make_target(root: Path, **files: str) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_a_freeze_refused_before_its_commit_stores_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    target = make_target(tmp_path / "t" / "app", **{"a.py": "x = 1\n", "b.py": "y = 2\n"})
    seen: list[SnapshotManifest] = []

    def refuse(manifest: SnapshotManifest) -> None:
        seen.append(manifest)
        raise Refused

    with pytest.raises(Refused):
        freeze_directory(target, [tmp_path / "t"], store, before_commit=refuse)
    assert sorted(seen[0].files) == ["a.py", "b.py"]
    assert stored(store) == []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.py", "x = 1\n")
    with pytest.raises(Refused):
        freeze_archive(buffer, "app.zip", store, before_commit=refuse)
    assert stored(store) == []
    manifest = freeze_directory(target, [tmp_path / "t"], store, before_commit=seen.append)
    assert seen[-1] is manifest and len(stored(store)) == 3


# --- one manifest per target ------------------------------------------------------------------


def test_targets_with_the_same_kept_files_each_keep_their_own_skipped_list(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    roots = [tmp_path / "t"]
    code = {"app.py": "import os\nos.system(input())\n", "util.py": "x = 1\n"}
    messy = make_target(tmp_path / "t" / "messy", **code)
    (messy / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    with open(bytes(messy) + b"/caf\xe9.md", "wb") as fh:
        fh.write(b"# notes\n")
    clean = make_target(tmp_path / "t" / "clean", **code)

    first = freeze_directory(messy, roots, store)
    second = freeze_directory(clean, roots, store)
    # The same content: the same digest (task keys, plans) and the blobs stored once.
    assert first.digest == second.digest
    assert len([p for p in (store / "objects").rglob("*") if p.is_file()]) == 2
    # But each target's own manifest, under its own key.
    assert first.key != second.key
    assert {p.stem for p in (store / "manifests").glob("*.json")} == {first.key, second.key}
    assert Snapshot.open(store, second.key).manifest.skipped == []
    assert Snapshot.open(store, second.key).manifest.source == "directory t/clean"
    assert sorted(i["reason"] for i in Snapshot.open(store, first.key).manifest.skipped) == [
        "binary",
        "its name is not valid UTF-8",
    ]
    # The same target frozen again is the same manifest: nothing new is written.
    assert freeze_directory(clean, roots, store).key == second.key
    assert len(list((store / "manifests").glob("*.json"))) == 2


def test_a_manifest_stored_under_another_key_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    roots = [tmp_path / "t"]
    one = freeze_directory(make_target(tmp_path / "t" / "a", **{"a.py": "x\n"}), roots, store)
    two = freeze_directory(make_target(tmp_path / "t" / "b", **{"a.py": "x\n"}), roots, store)
    manifests = store / "manifests"
    (manifests / f"{two.key}.json").write_bytes((manifests / f"{one.key}.json").read_bytes())
    with pytest.raises(SnapshotError, match="inconsistent"):
        Snapshot.open(store, two.key)


def test_a_manifest_stored_under_its_digest_still_opens(tmp_path: Path) -> None:
    # Stores written before manifests were keyed per target named them by their digest.
    store = tmp_path / "store"
    target = make_target(tmp_path / "t" / "a", **{"a.py": "x = 1\n"})
    manifest = freeze_directory(target, [tmp_path / "t"], store)
    manifests = store / "manifests"
    (manifests / f"{manifest.key}.json").rename(manifests / f"{manifest.digest}.json")
    assert Snapshot.open(store, manifest.digest).read_text("a.py") == "x = 1\n"


# --- collecting what no run references --------------------------------------------------------

HOUR = 3600.0


def age(path: Path, seconds: float = 2 * HOUR) -> None:
    """Make ``path`` (a file, or every file below a folder, and the folder) look unused."""
    when = time.time() - seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when))


def age_store(store: Path) -> None:
    for folder in ("manifests", "objects", "tmp"):
        if (store / folder).exists():
            age(store / folder)


@pytest.fixture
def two_targets(tmp_path: Path) -> tuple[Path, SnapshotManifest, SnapshotManifest]:
    """Two snapshots sharing one blob: ``kept``'s a.py is also ``orphan``'s."""
    store = tmp_path / "store"
    roots = [tmp_path / "t"]
    kept = make_target(tmp_path / "t" / "kept", **{"a.py": "shared = 1\n"})
    orphan = make_target(tmp_path / "t" / "orphan", **{"a.py": "shared = 1\n", "b.py": "own\n"})
    return store, freeze_directory(kept, roots, store), freeze_directory(orphan, roots, store)


def blob_names(store: Path) -> set[str]:
    return {p.name for p in (store / "objects").glob("??/*")}


def test_collect_removes_unreferenced_manifests_and_the_blobs_only_they_list(
    two_targets: tuple[Path, SnapshotManifest, SnapshotManifest],
) -> None:
    store, kept, orphan = two_targets
    age_store(store)
    own = orphan.files["b.py"]["sha256"]
    shared = kept.files["a.py"]["sha256"]

    dry = collect_garbage(store, {kept.key}, grace_s=HOUR, dry_run=True)
    assert [name for name, _ in dry.manifests] == [orphan.key]
    assert [name for name, _ in dry.blobs] == [own]
    assert dry.bytes == (store / "manifests" / f"{orphan.key}.json").stat().st_size + 4
    assert f"would remove blob {own} (4 bytes)" in dry.lines()
    assert dry.summary().startswith("would remove 1 manifest, 1 blob and 0 staging folders")
    assert blob_names(store) == {own, shared}  # a dry run removes nothing

    done = collect_garbage(store, {kept.key}, grace_s=HOUR)
    assert (done.manifests, done.blobs) == (dry.manifests, dry.blobs)
    assert done.summary().startswith("removed 1 manifest, 1 blob")
    assert "kept 1 manifest and 1 blob" in done.summary()
    assert blob_names(store) == {shared}
    assert Snapshot.open(store, kept.key).read_text("a.py") == "shared = 1\n"
    with pytest.raises(SnapshotError, match="does not exist"):
        Snapshot.open(store, orphan.key)
    assert not collect_garbage(store, {kept.key}, grace_s=HOUR)  # nothing left to remove


def test_nothing_used_within_the_grace_is_removed(
    two_targets: tuple[Path, SnapshotManifest, SnapshotManifest],
) -> None:
    # Seconds old, for a launch that has not created its run yet: no run references it.
    store, _, _ = two_targets
    garbage = collect_garbage(store, set(), grace_s=HOUR)
    assert not garbage and garbage.kept_manifests == 2 and garbage.kept_blobs == 2
    assert len(collect_garbage(store, set(), grace_s=0).manifests) == 2


def test_a_freeze_adopting_an_old_orphan_renews_it(
    tmp_path: Path, two_targets: tuple[Path, SnapshotManifest, SnapshotManifest]
) -> None:
    store, kept, orphan = two_targets
    age_store(store)
    again = freeze_directory(tmp_path / "t" / "orphan", [tmp_path / "t"], store)
    assert again.key == orphan.key
    garbage = collect_garbage(store, {kept.key}, grace_s=HOUR)
    assert not garbage
    assert Snapshot.open(store, orphan.key).read_text("b.py") == "own\n"


def test_a_freeze_committing_during_a_collection_keeps_its_snapshot(
    tmp_path: Path, two_targets: tuple[Path, SnapshotManifest, SnapshotManifest]
) -> None:
    # The collection has chosen the old orphan when a launch freezes the same target again
    # (before the collection takes its lock): the orphan is checked again under the lock.
    store, kept, orphan = two_targets
    age_store(store)
    real_lock = Store.lock

    def lock_after_a_freeze(self: Store, *, exclusive: bool) -> Any:
        if exclusive:
            freeze_directory(tmp_path / "t" / "orphan", [tmp_path / "t"], store)
        return real_lock(self, exclusive=exclusive)

    with mock.patch.object(Store, "lock", lock_after_a_freeze):
        garbage = collect_garbage(store, {kept.key}, grace_s=HOUR)
    assert not garbage and garbage.kept_manifests == 2
    snapshot = Snapshot.open(store, orphan.key)
    assert [snapshot.read_text(p) for p in snapshot.paths()] == ["shared = 1\n", "own\n"]


def test_a_freeze_after_a_collection_writes_back_what_it_removed(
    tmp_path: Path, two_targets: tuple[Path, SnapshotManifest, SnapshotManifest]
) -> None:
    store, kept, orphan = two_targets
    age_store(store)
    assert collect_garbage(store, {kept.key}, grace_s=HOUR).manifests
    freeze_directory(tmp_path / "t" / "orphan", [tmp_path / "t"], store)
    assert Snapshot.open(store, orphan.key).read_text("b.py") == "own\n"


def test_stale_staging_folders_go_and_fresh_ones_stay(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "tmp" / "stage-crashed").mkdir(parents=True)
    (store / "tmp" / "stage-crashed" / "abc").write_bytes(b"x" * 10)
    age(store / "tmp" / "stage-crashed")
    (store / "tmp" / "stage-busy").mkdir()
    garbage = collect_garbage(store, set(), grace_s=HOUR)
    assert garbage.staging == [("stage-crashed", 10)]
    assert [p.name for p in (store / "tmp").iterdir()] == ["stage-busy"]


def test_blobs_are_left_alone_when_a_kept_manifest_cannot_be_read(
    two_targets: tuple[Path, SnapshotManifest, SnapshotManifest],
) -> None:
    store, kept, orphan = two_targets
    (store / "manifests" / f"{kept.key}.json").write_text("{not json")
    age_store(store)
    garbage = collect_garbage(store, {kept.key}, grace_s=HOUR)
    assert [name for name, _ in garbage.manifests] == [orphan.key]
    assert garbage.blobs == [] and len(blob_names(store)) == 2
    assert "cannot be read" in garbage.summary()


def test_removals_hold_the_lock_one_batch_at_a_time(tmp_path: Path) -> None:
    # A freeze waiting to commit waits for one batch of removals, not the whole collection.
    store = tmp_path / "store"
    files = {f"m{i}.py": f"x = {i}\n" for i in range(5)}
    freeze_directory(make_target(tmp_path / "t" / "a", **files), [tmp_path / "t"], store)
    age_store(store)
    holds: list[bool] = []
    real_lock = Store.lock

    def counted(self: Store, *, exclusive: bool) -> Any:
        holds.append(exclusive)
        return real_lock(self, exclusive=exclusive)

    with mock.patch.object(Store, "lock", counted), mock.patch("agents.snapshot.gc._BATCH", 2):
        garbage = collect_garbage(store, set(), grace_s=HOUR)
    assert (len(garbage.manifests), len(garbage.blobs)) == (1, 5)
    assert holds == [True, True, True]  # six removals, two at a time
