"""The snapshot store over time: a freeze refused before its commit stores nothing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from agents.snapshot import SnapshotManifest, freeze_archive, freeze_directory


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
