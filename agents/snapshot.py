"""Immutable, content-addressed snapshots of a run's target.

At launch the target (a directory under an allowed root, or an uploaded archive) is frozen into a
store so agents never read the live directory. Store layout::

    objects/<sha256[:2]>/<sha256>   one read-only blob per distinct file content
    manifests/<digest>.json         one manifest per snapshot
    tmp/                            staging; emptied after every freeze

Contracts:

* Only UTF-8 text files are kept; everything else is listed in ``SnapshotManifest.skipped`` with a
  reason. The manifest ``digest`` depends only on the kept (path, content) pairs, so the same
  content always gives the same digest, whatever the mtimes or the walk order.
* A freeze either writes a complete manifest or no manifest at all. Blobs are staged under
  ``tmp/`` and only moved into ``objects/`` once every check passed.
* Symlinks are never followed, archives are never extracted to disk, and every path handed to
  ``Snapshot`` is normalised and refused if it tries to leave the snapshot.
* Every refusal is a ``SnapshotError`` whose message can be shown to a user as-is.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

SKIP_DIRS: dict[str, str] = {
    ".git": "vcs folder",
    ".hg": "vcs folder",
    ".svn": "vcs folder",
    "node_modules": "dependency or cache folder",
    "__pycache__": "dependency or cache folder",
    ".venv": "dependency or cache folder",
    ".tox": "dependency or cache folder",
}
BINARY_SNIFF_BYTES = 8192
MAX_SKIPPED_LISTED = 1000  # a tree full of junk must not bloat the manifest
MAX_DIR_DEPTH = 64
MAX_PATTERN_CHARS = 200
MAX_SEARCH_LINE_CHARS = 2000  # long (minified) lines are searched only up to here
MAX_RESULT_LINE_CHARS = 300
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
# Best-effort guard against catastrophic backtracking: a quantified group that itself contains a
# quantifier, e.g. (a+)+ or (\w*\s)*. Python's re has no timeout, so refuse the shape instead.
_NESTED_QUANTIFIER_RE = re.compile(r"\([^()]*[*+}][^()]*\)[*+{]")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class SnapshotError(ValueError):
    """A refusal or failure whose message is fit to show to the user."""


class UnsafePathError(SnapshotError):
    """A path that is absolute or tries to leave the snapshot (``..``, drive letters, NUL)."""


class _Skip(Exception):
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

    @staticmethod
    def compute_digest(files: dict[str, dict[str, Any]]) -> str:
        """SHA-256 over the sorted (path, blob sha, size) entries; nothing else counts."""
        entries = [[path, meta["sha256"], meta["size"]] for path, meta in sorted(files.items())]
        return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "digest": self.digest,
            "source": self.source,
            "total_bytes": self.total_bytes,
            "files": self.files,
            "skipped": self.skipped,
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


class _Store:
    """Paths of a snapshot store; creates its folders on first use."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.manifests = self.root / "manifests"
        self.tmp = self.root / "tmp"

    def blob_path(self, sha: str) -> Path:
        return self.objects / sha[:2] / sha

    def manifest_path(self, digest: str) -> Path:
        return self.manifests / f"{digest}.json"


class _Builder:
    """Collects files into a staging folder; ``finish`` commits them and writes the manifest.

    Use as a context manager: the staging folder is always removed, and nothing reaches
    ``objects/`` or ``manifests/`` unless ``finish`` ran to completion.
    """

    def __init__(self, store: Path, source: str, *, max_file_bytes: int, max_total_bytes: int,
                 max_files: int) -> None:
        self.store = _Store(store)
        self.source = source
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_files = max_files
        self.files: dict[str, dict[str, Any]] = {}
        self.skipped: list[dict[str, str]] = []
        self.skipped_count = 0
        self.total_bytes = 0
        self.staged: set[str] = set()

    def __enter__(self) -> _Builder:
        self.store.tmp.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix="stage-", dir=self.store.tmp))
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def skip(self, path: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append({"path": path, "reason": reason})

    def add(self, path: str, size_hint: int, read: Callable[[int], bytes]) -> None:
        """Keep ``path`` if it is UTF-8 text within the limits; otherwise record why not.

        ``read(limit)`` returns at most ``limit`` bytes, or raises ``_Skip``/``OSError``.
        """
        if len(self.files) >= self.max_files:
            return self.skip(path, "limit reached")
        if size_hint > self.max_file_bytes:
            return self.skip(path, "too large")
        try:
            data = read(self.max_file_bytes + 1)
        except _Skip as skip:
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
        if sha not in self.staged:
            staged = self.staging / sha
            staged.write_bytes(data)
            os.chmod(staged, 0o444)  # blobs are immutable once written
            self.staged.add(sha)
        self.files[path] = {"sha256": sha, "size": len(data), "lines": len(text.splitlines())}
        self.total_bytes += len(data)

    def finish(self) -> SnapshotManifest:
        """Commit staged blobs, write the manifest (if new) and return it."""
        if not self.files:
            reasons = sorted({item["reason"] for item in self.skipped})
            detail = f" ({self.skipped_count} skipped: {', '.join(reasons)})" if reasons else ""
            raise SnapshotError(f"Nothing to analyse in {self.source}: no text files{detail}.")
        if self.skipped_count > len(self.skipped):
            more = self.skipped_count - len(self.skipped)
            self.skipped.append({"path": "…", "reason": f"{more} more skipped, not listed"})
        manifest = SnapshotManifest(
            digest=SnapshotManifest.compute_digest(self.files),
            files=dict(sorted(self.files.items())),
            skipped=self.skipped,
            total_bytes=self.total_bytes,
            source=self.source,
        )
        for sha in sorted(self.staged):
            dest = self.store.blob_path(sha)
            if dest.exists():  # identical content is stored once
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / sha, dest)
        target = self.store.manifest_path(manifest.digest)
        # Same digest means same content: the first manifest written stays, so a snapshot is
        # never rewritten under a reader's feet.
        if not target.exists():
            self.store.manifests.mkdir(parents=True, exist_ok=True)
            tmp = self.staging / "manifest.json"
            tmp.write_text(json.dumps(manifest.to_dict(), indent=1, ensure_ascii=False), "utf-8")
            os.replace(tmp, target)
        return manifest


def _read_at(dir_fd: int, name: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes of regular file ``name`` in ``dir_fd``, never via a symlink."""
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: the entry became a symlink after the directory was listed.
        raise _Skip("symlink" if exc.errno == errno.ELOOP else "unreadable") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Skip("special file")
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _walk(builder: _Builder, dir_fd: int, rel: str, depth: int) -> None:
    """Add every entry below ``dir_fd`` in name order. Directories are opened relative to their
    parent's descriptor with O_NOFOLLOW, so swapping one for a symlink mid-walk cannot escape."""
    with os.scandir(dir_fd) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        relpath = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_symlink():
            builder.skip(relpath, "symlink")
        elif entry.is_dir(follow_symlinks=False):
            if entry.name in SKIP_DIRS:
                builder.skip(relpath, SKIP_DIRS[entry.name])
                continue
            if depth >= MAX_DIR_DEPTH:
                builder.skip(relpath, "too deep")
                continue
            try:
                child = os.open(entry.name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW,
                                dir_fd=dir_fd)
            except OSError:
                builder.skip(relpath, "unreadable")
                continue
            try:
                _walk(builder, child, relpath, depth + 1)
            except PermissionError:
                builder.skip(relpath, "unreadable")
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False):
            size = entry.stat(follow_symlinks=False).st_size
            builder.add(relpath, size, partial(_read_at, dir_fd, entry.name))
        else:
            builder.skip(relpath, "special file")


def freeze_directory(path: str | Path, allowed_roots: list[Path], store: Path, *,
                     max_file_bytes: int = 1_000_000, max_total_bytes: int = 200_000_000,
                     max_files: int = 20_000) -> SnapshotManifest:
    """Freeze the text files of directory ``path`` (or the one file ``path``, for a
    single-document review) into ``store`` and return the manifest.

    ``path`` must resolve (symlinks and ``..`` resolved) inside one of ``allowed_roots``. Symlinks
    inside the tree are listed as skipped and never read; VCS and dependency folders, binaries,
    files over ``max_file_bytes`` and files past ``max_files`` / ``max_total_bytes`` are skipped
    too. Raises ``SnapshotError`` if the path is refused, missing, not a directory, or empty.
    """
    if not allowed_roots:
        raise SnapshotError("No target folders are allowed on this server.")
    try:
        resolved = Path(path).resolve()
        roots = [Path(root).resolve() for root in allowed_roots]
    except (OSError, RuntimeError, ValueError) as exc:
        raise SnapshotError(f"Cannot use target path {str(path)!r}.") from exc
    # Check confinement before existence so the answer says nothing about paths outside.
    if not any(resolved.is_relative_to(root) for root in roots):
        raise SnapshotError(f"Target {str(path)!r} is outside the allowed folders.")
    if not resolved.exists():
        raise SnapshotError(f"Target {str(path)!r} does not exist.")
    if resolved.is_file():
        # A single document (multi-perspective review): a one-file snapshot.
        with _Builder(store, f"file {resolved}", max_file_bytes=max_file_bytes,
                      max_total_bytes=max_total_bytes, max_files=max_files) as builder:
            def read(limit: int) -> bytes:
                with open(resolved, "rb") as fh:
                    return fh.read(limit)

            builder.add(resolved.name, resolved.stat().st_size, read)
            return builder.finish()
    if not resolved.is_dir():
        raise SnapshotError(f"Target {str(path)!r} is not a directory or a file.")
    with _Builder(store, f"directory {resolved}", max_file_bytes=max_file_bytes,
                  max_total_bytes=max_total_bytes, max_files=max_files) as builder:
        try:
            root_fd = os.open(resolved, os.O_RDONLY | _O_DIRECTORY)
        except OSError as exc:
            raise SnapshotError(f"Target {str(path)!r} cannot be read.") from exc
        try:
            _walk(builder, root_fd, "", 0)
        except PermissionError as exc:
            raise SnapshotError(f"Target {str(path)!r} cannot be read.") from exc
        finally:
            os.close(root_fd)
        return builder.finish()


class Snapshot:
    """Read-only view of a frozen snapshot. Every path argument goes through ``normalise_path``."""

    _CACHE_SIZE = 64

    def __init__(self, store: Path, manifest: SnapshotManifest) -> None:
        self._store = _Store(store)
        self.manifest = manifest
        self._cache: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def open(cls, store: Path, digest: str) -> Snapshot:
        """Open snapshot ``digest`` from ``store``; ``SnapshotError`` if it does not exist."""
        if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
            raise SnapshotError("Invalid snapshot reference.")
        path = _Store(store).manifest_path(digest)
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise SnapshotError(f"Snapshot {digest[:12]} does not exist.") from exc
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"Snapshot {digest[:12]} cannot be read.") from exc
        manifest = SnapshotManifest.from_dict(data)
        if manifest.digest != digest:
            raise SnapshotError(f"Snapshot {digest[:12]} is inconsistent.")
        return cls(store, manifest)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def total_bytes(self) -> int:
        return self.manifest.total_bytes

    def paths(self) -> list[str]:
        return sorted(self.manifest.files)

    def read_text(self, path: str) -> str:
        """The file's full text. ``SnapshotError`` for unknown paths, ``UnsafePathError``
        for escapes; the blob's hash is checked so a tampered store is noticed."""
        clean = normalise_path(path)
        if clean in self._cache:
            self._cache.move_to_end(clean)
            return self._cache[clean]
        meta = self.manifest.files.get(clean)
        if meta is None:
            raise SnapshotError(f"No file {clean or '/'!r} in the snapshot.")
        try:
            data = self._store.blob_path(meta["sha256"]).read_bytes()
        except OSError as exc:
            raise SnapshotError(f"The content of {clean!r} is missing from the store.") from exc
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise SnapshotError(f"The content of {clean!r} is corrupted in the store.")
        text = data.decode("utf-8")
        self._cache[clean] = text
        if len(self._cache) > self._CACHE_SIZE:
            self._cache.popitem(last=False)
        return text

    def read_lines(self, path: str, start: int = 1, end: int | None = None) -> list[str]:
        """Lines ``start``..``end`` (1-based, inclusive; ``end=None`` means to the end)."""
        if start < 1 or (end is not None and end < start):
            raise SnapshotError("Line range must satisfy 1 <= start <= end.")
        return self.read_text(path).splitlines()[start - 1: end]

    def list_dir(self, path: str = "") -> list[dict[str, Any]]:
        """Direct children of directory ``path``: dirs first, then files, each sorted by name.
        A directory's size is the total size of the files below it."""
        clean = normalise_path(path)
        if clean in self.manifest.files:
            raise SnapshotError(f"{clean!r} is a file, not a directory.")
        prefix = f"{clean}/" if clean else ""
        children: dict[str, dict[str, Any]] = {}
        for file_path, meta in self.manifest.files.items():
            if not file_path.startswith(prefix):
                continue
            head, sep, _ = file_path[len(prefix):].partition("/")
            child = children.setdefault(
                head, {"name": head, "type": "dir" if sep else "file", "size": 0})
            child["size"] += meta["size"]
        if not children and clean:
            raise SnapshotError(f"No directory {clean!r} in the snapshot.")
        return sorted(children.values(), key=lambda c: (c["type"] != "dir", c["name"]))

    def iter_files(self, path_prefix: str = "") -> Iterator[str]:
        """Paths equal to ``path_prefix`` or below it as a directory, sorted."""
        clean = normalise_path(path_prefix)
        for file_path in self.paths():
            if not clean or file_path == clean or file_path.startswith(f"{clean}/"):
                yield file_path

    def search(self, pattern: str, *, regex: bool = False, path_prefix: str = "",
               max_results: int = 200) -> list[dict[str, Any]]:
        """Lines matching ``pattern`` (a literal, or a Python regex if ``regex``), in path order.

        Patterns are capped at 200 characters, regexes with nested quantifiers are refused and
        only the first 2000 characters of each line are searched, so one search stays bounded.
        Result ``text`` is the line trimmed to 300 characters.
        """
        if not isinstance(pattern, str) or not pattern:
            raise SnapshotError("The search pattern must be a non-empty string.")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise SnapshotError(f"The search pattern is longer than {MAX_PATTERN_CHARS} chars.")
        matcher: Callable[[str], bool]
        if regex:
            if _NESTED_QUANTIFIER_RE.search(pattern):
                raise SnapshotError("Regex refused: nested quantifiers like (a+)+ can hang.")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise SnapshotError(f"Invalid regular expression: {exc}.") from exc
            matcher = lambda line: compiled.search(line) is not None  # noqa: E731
        else:
            matcher = lambda line: pattern in line  # noqa: E731
        results: list[dict[str, Any]] = []
        for file_path in self.iter_files(path_prefix):
            for number, line in enumerate(self.read_text(file_path).splitlines(), start=1):
                if matcher(line[:MAX_SEARCH_LINE_CHARS]):
                    results.append({"path": file_path, "line": number,
                                    "text": line[:MAX_RESULT_LINE_CHARS]})
                    if len(results) >= max_results:
                        return results
        return results
