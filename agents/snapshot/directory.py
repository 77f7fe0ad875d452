"""Freezing a directory under an allowed root: walked by file descriptor, links never followed."""

from __future__ import annotations

import errno
import os
import stat
from functools import partial
from pathlib import Path

from agents.snapshot.base import BeforeCommit, Builder, Skip, SnapshotError, SnapshotManifest
from agents.snapshot.excludes import Excludes

MAX_DIR_DEPTH = 64
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _read_at(dir_fd: int, name: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes of regular file ``name`` in ``dir_fd``, never via a symlink."""
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: the entry became a symlink after the directory was listed.
        raise Skip("symlink" if exc.errno == errno.ELOOP else "unreadable") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Skip("special file")
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


def _walk(builder: Builder, dir_fd: int, rel: str, depth: int, exclude: Excludes) -> None:
    """Add every entry below ``dir_fd`` in name order. Directories are opened relative to their
    parent's descriptor with O_NOFOLLOW, so swapping one for a symlink mid-walk cannot escape.
    An excluded folder is listed once and never entered."""
    with os.scandir(dir_fd) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        relpath = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_symlink():
            builder.skip(relpath, "symlink")
        elif entry.is_dir(follow_symlinks=False):
            if skipped := exclude.folder_reason(relpath):
                builder.skip(relpath, skipped)
                continue
            if depth >= MAX_DIR_DEPTH:
                builder.skip(relpath, "too deep")
                continue
            try:
                child = os.open(entry.name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                builder.skip(relpath, "unreadable")
                continue
            try:
                _walk(builder, child, relpath, depth + 1, exclude)
            except PermissionError:
                builder.skip(relpath, "unreadable")
            finally:
                os.close(child)
        elif excluded := exclude.reason(relpath):
            builder.skip(relpath, excluded)  # before reading it: an excluded file costs nothing
        elif entry.is_file(follow_symlinks=False):
            size = entry.stat(follow_symlinks=False).st_size
            builder.add(relpath, size, partial(_read_at, dir_fd, entry.name))
        else:
            builder.skip(relpath, "special file")


def target_label(path: str | Path, allowed_roots: list[Path]) -> str:
    """How a target is named wherever a user or a file leaving the server sees it (titles,
    events, pages, exports): its path below the innermost allowed root holding it, after that
    root's own name ("samples/vulnerable_app"), as the launch form lists it. A path under no
    root (refused anyway) is named by its basename. Never the server's absolute path: it says
    how the server is laid out and means nothing to a reader elsewhere."""
    resolved = Path(path).resolve()
    roots = (Path(root).resolve() for root in allowed_roots)
    holding = [root for root in roots if resolved.is_relative_to(root)]
    if not holding:
        return resolved.name or "target"
    root = max(holding, key=lambda r: len(r.parts))
    parts = [root.name, *resolved.relative_to(root).parts]
    return "/".join(part for part in parts if part) or "target"


def freeze_directory(
    path: str | Path,
    allowed_roots: list[Path],
    store: Path | None,
    *,
    max_file_bytes: int = 1_000_000,
    max_total_bytes: int = 200_000_000,
    max_files: int = 20_000,
    exclude: Excludes | None = None,
    before_commit: BeforeCommit | None = None,
) -> SnapshotManifest:
    """Freeze the text files of directory ``path`` (or the one file ``path``, for a
    single-document review) into ``store`` and return the manifest.

    ``exclude`` says what is left out on purpose (None: the default excludes); a target that is
    one file was named by the user and is read whatever it says.

    ``path`` must resolve (symlinks and ``..`` resolved) inside one of ``allowed_roots``. Symlinks
    inside the tree are listed as skipped and never read; VCS and dependency folders, binaries,
    files over ``max_file_bytes`` and files past ``max_files`` / ``max_total_bytes`` are skipped
    too. Raises ``SnapshotError`` if the path is refused, missing, not a directory, or empty.
    ``store=None`` lists without writing: the same manifest and digest, no blob, no manifest file.
    ``before_commit`` may refuse the result before anything is stored (``Builder.finish``).
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
    # Inside a root from here on: messages and the manifest name the target as users see it.
    label = target_label(resolved, roots)
    if not resolved.exists():
        raise SnapshotError(f"Target {label!r} does not exist.")
    if resolved.is_file():
        # A single document (multi-perspective review): a one-file snapshot.
        with Builder(
            store,
            f"file {label}",
            max_file_bytes=max_file_bytes,
            max_total_bytes=max_total_bytes,
            max_files=max_files,
        ) as builder:

            def read(limit: int) -> bytes:
                with open(resolved, "rb") as fh:
                    return fh.read(limit)

            builder.add(resolved.name, resolved.stat().st_size, read)
            return builder.finish(before_commit)
    if not resolved.is_dir():
        raise SnapshotError(f"Target {label!r} is not a directory or a file.")
    with Builder(
        store,
        f"directory {label}",
        max_file_bytes=max_file_bytes,
        max_total_bytes=max_total_bytes,
        max_files=max_files,
    ) as builder:
        try:
            root_fd = os.open(resolved, os.O_RDONLY | _O_DIRECTORY)
        except OSError as exc:
            raise SnapshotError(f"Target {label!r} cannot be read.") from exc
        try:
            _walk(builder, root_fd, "", 0, exclude or Excludes())
        except PermissionError as exc:
            raise SnapshotError(f"Target {label!r} cannot be read.") from exc
        finally:
            os.close(root_fd)
        return builder.finish(before_commit)
