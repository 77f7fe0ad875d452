"""Removing what no run references from a snapshot store: manifests, then the blobs no remaining
manifest lists, and staging folders a crashed freeze left behind.

Safe beside launches in progress:

* Nothing used within ``grace_s`` is removed. A freeze marks every blob and the manifest it
  commits as just used (``base.renew``: written now, or an existing one's mtime renewed), so a
  snapshot committed for a launch whose run row does not exist yet is spared, and so is an old
  blob a new manifest has just adopted.
* Removal happens under the store's exclusive lock, and each candidate's age is checked again
  there: a freeze commits under the shared lock, so it either finished first (its files are
  young and stay) or starts after (it finds its files gone and writes them again).

The caller says which manifests are referenced (``referenced``: the keys runs open); the store
itself knows nothing of runs.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.snapshot.base import SnapshotError, SnapshotManifest, Store
from agents.wording import count

_HEX64 = re.compile(r"[0-9a-f]{64}")
_BATCH = 200  # removals per hold of the store's exclusive lock


@dataclass
class Garbage:
    """What a collection removed (or, in a dry run, would remove): (name, bytes) each."""

    dry_run: bool = False
    manifests: list[tuple[str, int]] = field(default_factory=list)
    blobs: list[tuple[str, int]] = field(default_factory=list)
    staging: list[tuple[str, int]] = field(default_factory=list)
    kept_manifests: int = 0
    kept_blobs: int = 0
    # Why blobs were left alone this time (a kept manifest could not be read: what it lists is
    # unknown, so no blob is known to be unused).
    blobs_untouched: str = ""

    @property
    def bytes(self) -> int:
        return sum(
            size for items in (self.manifests, self.blobs, self.staging) for _, size in items
        )

    def __bool__(self) -> bool:
        return bool(self.manifests or self.blobs or self.staging)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        return [
            f"{verb} {kind} {name} ({size:,} bytes)"
            for kind, items in (
                ("manifest", self.manifests),
                ("blob", self.blobs),
                ("staging", self.staging),
            )
            for name, size in items
        ]

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        line = (
            f"{verb} {count(len(self.manifests), 'manifest')}, {count(len(self.blobs), 'blob')} "
            f"and {count(len(self.staging), 'staging folder')}, {self.bytes:,} bytes; kept "
            f"{count(self.kept_manifests, 'manifest')} and {count(self.kept_blobs, 'blob')}"
        )
        if self.blobs_untouched:
            line += f"; blobs left alone: {self.blobs_untouched}"
        return line


def _age_ok(path: Path, cutoff: float) -> int | None:
    """``path``'s size if it was last used before ``cutoff``; None if younger or gone."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size if stat.st_mtime < cutoff else None


def _listed_blobs(path: Path) -> set[str]:
    try:
        manifest = SnapshotManifest.from_dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError) as exc:  # SnapshotError is a ValueError
        raise SnapshotError(f"manifest {path.stem[:12]} cannot be read") from exc
    return {str(meta.get("sha256")) for meta in manifest.files.values()}


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def collect_garbage(
    root: Path, referenced: set[str], *, grace_s: float, dry_run: bool = False
) -> Garbage:
    """Remove (or with ``dry_run`` only list) every manifest of ``root`` not in ``referenced``,
    every blob no remaining manifest lists and every staging folder, each only if unused for
    ``grace_s`` seconds."""
    store = Store(root)
    garbage = Garbage(dry_run=dry_run)
    cutoff = time.time() - grace_s
    doomed: list[tuple[Path, str, int]] = []
    live: set[str] = set()
    manifests = sorted(store.manifests.glob("*.json")) if store.manifests.is_dir() else []
    for path in manifests:
        if not _HEX64.fullmatch(path.stem):
            continue
        size = None if path.stem in referenced else _age_ok(path, cutoff)
        if size is not None:
            doomed.append((path, path.stem, size))
            continue
        garbage.kept_manifests += 1
        try:
            live |= _listed_blobs(path)
        except SnapshotError as exc:
            garbage.blobs_untouched = str(exc)
        except FileNotFoundError:  # removed meanwhile by another collection
            continue
    blobs: list[tuple[Path, str, int]] = []
    if store.objects.is_dir() and not garbage.blobs_untouched:
        for path in sorted(store.objects.glob("??/*")):
            if not _HEX64.fullmatch(path.name) or path.name in live:
                garbage.kept_blobs += 1
                continue
            size = _age_ok(path, cutoff)
            if size is None:
                garbage.kept_blobs += 1
            else:
                blobs.append((path, path.name, size))
    staging = sorted(store.tmp.iterdir()) if store.tmp.is_dir() else []
    stale = [(p, p.name, _size(p)) for p in staging if _age_ok(p, cutoff) is not None]
    if dry_run:
        garbage.manifests = [(name, size) for _, name, size in doomed]
        garbage.blobs = [(name, size) for _, name, size in blobs]
        garbage.staging = [(name, size) for _, name, size in stale]
        return garbage
    removals = [
        *((garbage.manifests, path, name) for path, name, _ in doomed),
        *((garbage.blobs, path, name) for path, name, _ in blobs),
        *((garbage.staging, path, name) for path, name, _ in stale),
    ]
    for start in range(0, len(removals), _BATCH):
        # The lock in batches: a freeze waiting to commit waits for one batch, not the whole
        # collection. Each candidate's age is checked again under the lock, since a freeze may
        # have adopted it after the scan.
        with store.lock(exclusive=True):
            for removed, path, name in removals[start : start + _BATCH]:
                size = _age_ok(path, cutoff)
                if size is None:
                    continue
                if removed is garbage.staging:
                    size = _size(path)
                _remove(path)
                removed.append((name, size))
    garbage.kept_manifests += len(doomed) - len(garbage.manifests)
    garbage.kept_blobs += len(blobs) - len(garbage.blobs)
    return garbage
