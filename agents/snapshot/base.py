"""What every way of freezing shares: the manifest, the blob store, the builder, the refusals."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARY_SNIFF_BYTES = 8192
MAX_SKIPPED_LISTED = 1000  # a tree full of junk must not bloat the manifest


# Called with a built manifest before it is committed; raising refuses it (see Builder.finish).
BeforeCommit = Callable[["SnapshotManifest"], None]


class SnapshotError(ValueError):
    """A refusal or failure whose message is fit to show to the user."""


class UnsafePathError(SnapshotError):
    """A path that is absolute or tries to leave the snapshot (``..``, drive letters, NUL)."""


class Skip(Exception):
    """Internal: the current file is skipped for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SnapshotManifest:
    """What a snapshot holds. ``files`` maps POSIX relative path -> {"sha256", "size", "lines"}."""

    digest: str
    files: dict[str, dict[str, Any]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    total_bytes: int = 0
    source: str = ""
    # Every skip counted by reason, listed or not (``skipped`` stops listing at a limit).
    skipped_counts: dict[str, int] = field(default_factory=dict)
    # Set only while a freeze is being checked (``Builder.finish``'s ``before_commit``): the
    # text of a kept file, read from staging, for a check that plans from content. Never stored.
    read_staged: Callable[[str], str] | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def compute_digest(files: dict[str, dict[str, Any]]) -> str:
        """SHA-256 over the sorted (path, blob sha, size) entries; nothing else counts."""
        entries = [[path, meta["sha256"], meta["size"]] for path, meta in sorted(files.items())]
        return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()

    @property
    def key(self) -> str:
        """What the manifest is stored and referenced by: SHA-256 over the digest and what is
        the target's own (its source, what was skipped and why). Two targets whose kept files
        are identical share the digest and the blobs, never the manifest: each report states
        its own target's skipped files."""
        own = {
            "digest": self.digest,
            "source": self.source,
            "total_bytes": self.total_bytes,
            "skipped": self.skipped,
            "skipped_counts": self.skipped_counts,
        }
        return hashlib.sha256(
            json.dumps(own, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "digest": self.digest,
            "source": self.source,
            "total_bytes": self.total_bytes,
            "files": self.files,
            "skipped": self.skipped,
            "skipped_counts": self.skipped_counts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotManifest:
        try:
            return cls(
                digest=str(data["digest"]),
                files=dict(data["files"]),
                skipped=list(data.get("skipped", [])),
                total_bytes=int(data.get("total_bytes", 0)),
                source=str(data.get("source", "")),
                skipped_counts=dict(data.get("skipped_counts", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError("The snapshot manifest is malformed.") from exc


def normalise_path(path: str) -> str:
    """Return ``path`` as a clean POSIX relative path ("" is the root).

    Raises ``UnsafePathError`` for absolute paths, drive letters, NUL bytes and any ``..``
    component, even one that would stay inside (the caller never needs it and it hides escapes).
    """
    if not isinstance(path, str):
        raise UnsafePathError("A path must be a string.")
    text = path.replace("\\", "/")
    if "\x00" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise UnsafePathError(f"Path {path!r} is absolute or invalid; use a relative path.")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"Path {path!r} tries to leave the target ('..' is not allowed).")
    return "/".join(parts)


class Store:
    """Paths of a snapshot store; creates its folders on first use."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.manifests = self.root / "manifests"
        self.tmp = self.root / "tmp"

    def blob_path(self, sha: str) -> Path:
        return self.objects / sha[:2] / sha

    def manifest_path(self, key: str) -> Path:
        return self.manifests / f"{key}.json"

    @contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """Freezes commit under a shared lock, a collection removes under an exclusive one
        (``gc``): a blob or manifest a freeze is adopting is never removed under its feet."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def renew(path: Path) -> bool:
    """Mark ``path`` as just used (its mtime now): True if it exists and was marked. The grace
    of a collection counts from the last freeze that used a file, not from its first write."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except PermissionError:  # another user's file: the caller writes a fresh copy over it
        return False
    return True


def readable(name: str) -> str:
    """A file name as text that can always be shown and stored: the bytes of a name that is not
    valid UTF-8 (which Python keeps as surrogate escapes) become ``\\xNN`` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Builder:
    """Collects files into a staging folder; ``finish`` commits them and writes the manifest.

    Use as a context manager: the staging folder is always removed, and nothing reaches
    ``objects/`` or ``manifests/`` unless ``finish`` ran to completion. With ``store=None`` it
    only lists: the same checks and the same manifest (digest included), nothing written. The
    launch form's estimate plans from such a listing, so estimating never fills the store.
    """

    def __init__(
        self,
        store: Path | None,
        source: str,
        *,
        max_file_bytes: int,
        max_total_bytes: int,
        max_files: int,
    ) -> None:
        self.store = Store(store) if store is not None else None
        self.source = readable(source)
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_files = max_files
        self.files: dict[str, dict[str, Any]] = {}
        self.skipped: list[dict[str, str]] = []
        self.counts: Counter[str] = Counter()  # every skip, by reason
        self.unlisted: Counter[str] = Counter()  # the skips past the listing limit, by reason
        self.total_bytes = 0
        self.staged: set[str] = set()

    def __enter__(self) -> Builder:
        self.staging: Path | None = None
        if self.store is not None:
            self.store.tmp.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix="stage-", dir=self.store.tmp))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def skip(self, path: str, reason: str) -> None:
        self.counts[reason] += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append({"path": readable(path), "reason": reason})
        else:
            self.unlisted[reason] += 1

    def add(self, path: str, size_hint: int, read: Callable[[int], bytes]) -> None:
        """Keep ``path`` if it is UTF-8 text within the limits; otherwise record why not.

        ``read(limit)`` returns at most ``limit`` bytes, or raises ``Skip``/``OSError``.
        """
        if readable(path) != path:
            # Kept as is, the name could not be written in the manifest, shown on a page or
            # asked for by an agent: listed as skipped, readably.
            return self.skip(path, "its name is not valid UTF-8")
        if len(self.files) >= self.max_files:
            return self.skip(path, "limit reached")
        if size_hint > self.max_file_bytes:
            return self.skip(path, "too large")
        try:
            data = read(self.max_file_bytes + 1)
        except Skip as skip:
            return self.skip(path, skip.reason)
        except OSError:
            return self.skip(path, "unreadable")
        if len(data) > self.max_file_bytes:
            return self.skip(path, "too large")
        if self.total_bytes + len(data) > self.max_total_bytes:
            return self.skip(path, "limit reached")
        if b"\x00" in data[:BINARY_SNIFF_BYTES]:
            return self.skip(path, "binary")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self.skip(path, "binary")
        sha = hashlib.sha256(data).hexdigest()
        if self.staging is not None and sha not in self.staged:
            staged = self.staging / sha
            staged.write_bytes(data)
            os.chmod(staged, 0o444)  # blobs are immutable once written
            self.staged.add(sha)
        self.files[path] = {"sha256": sha, "size": len(data), "lines": len(text.splitlines())}
        self.total_bytes += len(data)

    def _read_staged(self, path: str) -> str:
        meta = self.files.get(path)
        if meta is None or self.staging is None:
            raise SnapshotError(f"No file {path!r} in the snapshot.")
        return (self.staging / str(meta["sha256"])).read_bytes().decode("utf-8")

    def finish(self, before_commit: BeforeCommit | None = None) -> SnapshotManifest:
        """Commit staged blobs, write the manifest (if new) and return it.

        ``before_commit(manifest)`` runs once the manifest is known and before anything is
        committed: whatever it raises refuses the snapshot with nothing stored (a launch plans
        the target here, so a target it refuses leaves no blob behind)."""
        if not self.files:
            reasons = sorted(self.counts)
            count = sum(self.counts.values())
            detail = f" ({count} skipped: {', '.join(reasons)})" if reasons else ""
            raise SnapshotError(f"Nothing to analyse in {self.source}: no text files{detail}.")
        if self.unlisted:
            # Counted by reason: a target with thousands of excluded translation files must
            # still say they were excluded, not only that "more" were skipped.
            more = sum(self.unlisted.values())
            why = ", ".join(f"{n} {reason}" for reason, n in self.unlisted.most_common())
            self.skipped.append({"path": "…", "reason": f"{more} more skipped, not listed ({why})"})
        manifest = SnapshotManifest(
            digest=SnapshotManifest.compute_digest(self.files),
            files=dict(sorted(self.files.items())),
            skipped=self.skipped,
            total_bytes=self.total_bytes,
            source=self.source,
            skipped_counts=dict(sorted(self.counts.items())),
        )
        if self.staging is not None:
            manifest.read_staged = self._read_staged
        if before_commit is not None:
            before_commit(manifest)
        manifest.read_staged = None
        if self.store is None or self.staging is None:
            return manifest  # a listing only
        # Serialised before any blob is committed: a manifest that cannot be written leaves
        # nothing behind in the store.
        text = json.dumps(manifest.to_dict(), indent=1, ensure_ascii=False).encode("utf-8")
        with self.store.lock(exclusive=False):
            for sha in sorted(self.staged):
                dest = self.store.blob_path(sha)
                if renew(dest):  # identical content is stored once
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.staging / sha, dest)
            target = self.store.manifest_path(manifest.key)
            # Same key means the same manifest: the one written first stays (renewed), so a
            # snapshot is not rewritten under a reader's feet.
            if not renew(target):
                self.store.manifests.mkdir(parents=True, exist_ok=True)
                tmp = self.staging / "manifest.json"
                tmp.write_bytes(text)
                os.replace(tmp, target)
        return manifest
