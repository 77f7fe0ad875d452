"""Freezing an uploaded zip or tar archive into a snapshot, without extracting it to disk.

Every entry is validated before any content is read; the whole archive is refused for unsafe
names, link or device entries, too many entries, or a bomb (declared or streamed sizes, ratio).
"""

from __future__ import annotations

import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

from agents.snapshot.base import (
    BeforeCommit,
    Builder,
    Skip,
    SnapshotError,
    SnapshotManifest,
    UnsafePathError,
    normalise_path,
)
from agents.snapshot.excludes import Excludes

LARGE_ENTRY_BYTES = 1 << 20  # the ratio check applies above this size: tiny files compress well
_TarMode = Literal["r:", "r:gz", "r:bz2", "r:xz"]
_TAR_MODES: dict[str, _TarMode] = {
    ".tar": "r:",
    ".tar.gz": "r:gz",
    ".tgz": "r:gz",
    ".tar.bz2": "r:bz2",
    ".tbz2": "r:bz2",
    ".tar.xz": "r:xz",
    ".txz": "r:xz",
}
# What a damaged archive can raise from the stdlib readers (gzip/bz2 raise OSError/EOFError).
_CORRUPT = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


def _refuse(reason: str) -> SnapshotError:
    return SnapshotError(f"Archive refused: {reason}.")


def _entry_name(raw: str) -> str:
    try:
        return normalise_path(raw)
    except UnsafePathError:
        raise _refuse(f"entry {raw[:100]!r} has an unsafe path (absolute or '..')") from None


def _check_entry_type(fmt: int, raw: str) -> None:
    if fmt == stat.S_IFLNK:
        raise _refuse(f"entry {raw[:100]!r} is a symlink or hard link")
    if fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _refuse(f"entry {raw[:100]!r} is a device or special file")


def _skip_opener(reason: str) -> Any:
    raise Skip(reason)


class _Limits:
    """Archive-wide limits; ``count`` is the streamed-bytes counter that does not trust headers.

    The refusals name the deployment setting behind each limit: the person who hits one can ask
    for it by name (``harness_site/settings.py`` passes the settings in at launch).
    """

    def __init__(self, max_entries: int, max_bytes: int, max_ratio: int) -> None:
        self.max_entries, self.max_bytes, self.max_ratio = max_entries, max_bytes, max_ratio
        self.streamed = 0

    def entries(self, count: int) -> None:
        if count > self.max_entries:
            raise _refuse(
                f"it holds more than {self.max_entries:,} entries (HARNESS_ARCHIVE_MAX_ENTRIES); "
                "archive only the files to analyse, without dependency or build folders"
            )

    def total(self, unpacked: int) -> None:
        if unpacked > self.max_bytes:
            raise _refuse(
                f"it expands to more than {self.max_bytes:,} bytes (HARNESS_ARCHIVE_MAX_BYTES); "
                "archive only the files to analyse, without dependency or build folders"
            )

    def ratio(self, unpacked: int, packed: int) -> None:
        if unpacked > LARGE_ENTRY_BYTES and unpacked > self.max_ratio * max(packed, 1):
            raise _refuse(f"compression ratio over {self.max_ratio} (an archive bomb?)")

    def count(self, size: int) -> None:
        self.streamed += size
        self.total(self.streamed)


def _stream(opener: Callable[[], Any], limits: _Limits, limit: int) -> bytes:
    """Read at most ``limit`` decompressed bytes of one entry, counting them against the limits."""
    try:
        with opener() as handle:
            chunks: list[bytes] = []
            got = 0
            while got < limit:
                chunk = handle.read(min(1 << 16, limit - got))
                if not chunk:
                    break
                got += len(chunk)
                limits.count(len(chunk))
                chunks.append(chunk)
            return b"".join(chunks)
    except SnapshotError:
        raise
    except _CORRUPT as exc:
        raise _refuse("the archive is corrupt") from exc


_Listing = list[tuple[str, int, Callable[[], Any]]]


def _list_zip(archive: zipfile.ZipFile, limits: _Limits, packed: int) -> _Listing:
    infos = archive.infolist()
    limits.entries(len(infos))
    listing: _Listing = []
    total = 0
    for info in infos:
        path = _entry_name(info.filename)
        _check_entry_type(stat.S_IFMT(info.external_attr >> 16), info.filename)
        if info.is_dir() or not path:
            continue
        total += info.file_size
        limits.total(total)
        limits.ratio(info.file_size, info.compress_size)
        if info.flag_bits & 0x1:
            listing.append((path, 0, partial(_skip_opener, "encrypted")))
        else:
            listing.append((path, info.file_size, partial(archive.open, info)))
    # And the archive as a whole: many entries each just under the per-entry threshold add up
    # to a bomb no single entry reveals.
    limits.ratio(total, packed)
    return listing


def _list_tar(archive: tarfile.TarFile, limits: _Limits, packed: int) -> _Listing:
    listing: _Listing = []
    total = entries = 0
    # next() one member at a time so a lying header is refused before its data is skipped over.
    while (member := archive.next()) is not None:
        entries += 1
        path = _entry_name(member.name)
        if member.issym() or member.islnk():
            _check_entry_type(stat.S_IFLNK, member.name)
        if not (member.isdir() or member.isfile()):
            _check_entry_type(stat.S_IFCHR, member.name)
        total += member.size if member.isfile() else 0
        limits.entries(entries)
        limits.total(total)
        limits.ratio(total, packed)  # tar has no per-entry packed size: judge the whole stream
        if member.isfile() and path:
            listing.append((path, member.size, partial(archive.extractfile, member)))
    return listing


def _check_unique(listing: _Listing) -> None:
    paths = [path for path, _, _ in listing]
    seen = set(paths)
    if len(seen) != len(paths):
        raise _refuse("it holds the same path twice")
    for path in paths:
        parts = path.split("/")
        if any("/".join(parts[:i]) in seen for i in range(1, len(parts))):
            raise _refuse(f"{path!r} is below an entry that is a file")


def freeze_archive(
    fileobj: BinaryIO,
    filename: str,
    store: Path,
    *,
    max_file_bytes: int = 1_000_000,
    max_total_bytes: int = 200_000_000,
    max_files: int = 20_000,
    max_entries: int = 20_000,
    max_uncompressed_bytes: int = 100_000_000,
    max_ratio: int = 100,
    exclude: Excludes | None = None,
    before_commit: BeforeCommit | None = None,
) -> SnapshotManifest:
    """Freeze an uploaded zip or tar archive (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz).

    Every entry is validated before any content is read, and the whole archive is refused with a
    ``SnapshotError`` (no manifest written) for: an unsupported extension, a corrupt archive,
    unsafe names (``..``, absolute, drive letters), link or device entries, more than
    ``max_entries`` entries, a compression ratio over ``max_ratio`` on a large entry or on the
    whole archive, or more than ``max_uncompressed_bytes`` expanded: the declared sizes are
    checked as the entries are listed, before any content is read, and the bytes actually
    decompressed are counted as they are read (a header may lie), so no more than that is ever
    decompressed. Content is streamed in memory; nothing is extracted to disk. Inside a valid
    archive, files are kept (at most ``max_files`` of them) or skipped exactly as
    ``freeze_directory`` does, ``exclude`` included (None: the default excludes), and
    ``before_commit`` may refuse the result before anything is stored (``Builder.finish``).
    """
    exclude = exclude or Excludes()
    name = PurePosixPath(str(filename).replace("\\", "/")).name[:100] or "upload"
    lower = name.lower()
    tar_mode = next((mode for ext, mode in _TAR_MODES.items() if lower.endswith(ext)), None)
    if not lower.endswith(".zip") and tar_mode is None:
        raise SnapshotError(f"Unsupported archive {name!r}: use .zip, .tar, .tar.gz or .tar.bz2.")
    if not fileobj.seekable():  # zip needs random access; keep the copy bounded
        data = fileobj.read(max_uncompressed_bytes + 1)
        if len(data) > max_uncompressed_bytes:
            raise _refuse(f"larger than {max_uncompressed_bytes:,} bytes")
        fileobj = io.BytesIO(data)
    packed = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(0)
    limits = _Limits(max_entries, max_uncompressed_bytes, max_ratio)
    archive: zipfile.ZipFile | tarfile.TarFile
    try:
        if tar_mode is None:
            archive = zipfile.ZipFile(fileobj)
        else:
            # Closed by the ``with archive`` below.
            archive = tarfile.open(fileobj=fileobj, mode=tar_mode)  # noqa: SIM115
    except _CORRUPT as exc:
        raise SnapshotError(f"{name!r} is not a valid archive or is corrupt.") from exc
    with (
        archive,
        Builder(
            store,
            f"archive {name}",
            max_file_bytes=max_file_bytes,
            max_total_bytes=max_total_bytes,
            max_files=max_files,
        ) as builder,
    ):
        try:
            if isinstance(archive, zipfile.ZipFile):
                listing = _list_zip(archive, limits, packed)
            else:
                listing = _list_tar(archive, limits, packed)
        except SnapshotError:
            raise
        except _CORRUPT as exc:
            raise SnapshotError(f"{name!r} is not a valid archive or is corrupt.") from exc
        _check_unique(listing)
        folders = _FolderSkips(exclude)
        for path, size, opener in listing:
            skipped = folders.skipped(path)
            if skipped is None:
                if excluded := exclude.reason(path):
                    builder.skip(path, excluded)
                else:
                    builder.add(path, size, partial(_stream, opener, limits))
            elif skipped[0] not in folders.listed:
                folders.listed.add(skipped[0])
                builder.skip(*skipped)
        return builder.finish(before_commit)


class _FolderSkips:
    """An archive lists files, not folders: the first folder above a file that a directory walk
    would not have entered (a VCS folder, an excluded one), each folder asked about once."""

    def __init__(self, exclude: Excludes) -> None:
        self.exclude = exclude
        self.reasons: dict[str, str | None] = {}
        self.listed: set[str] = set()

    def skipped(self, path: str) -> tuple[str, str] | None:
        """(folder, reason) of the outermost skipped folder above ``path``, or None."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self.reasons:
                self.reasons[folder] = self.exclude.folder_reason(folder)
            if (reason := self.reasons[folder]) is not None:
                return folder, reason
        return None
