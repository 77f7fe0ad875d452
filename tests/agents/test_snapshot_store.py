"""The snapshot store over time: a freeze refused before its commit stores nothing, and each
target has its own manifest (its own skipped list) while identical content is stored once."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from agents.snapshot import (
    Snapshot,
    SnapshotError,
    SnapshotManifest,
    freeze_archive,
    freeze_directory,
)


class Refused(Exception):
    pass


def stored(store: Path) -> list[Path]:
    """Every file in the store, staging included."""
    return sorted(p for p in store.rglob("*") if p.is_file()) if store.exists() else []


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
