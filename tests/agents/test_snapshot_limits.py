"""Absolute limits of an uploaded archive, beside the compression ratio: the bytes it expands to
and the entries it lists, refused before anything is read or written past them."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from unittest import mock

import pytest

from agents.snapshot import SnapshotError, freeze_archive


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def stored(store: Path) -> list[Path]:
    """Every blob, manifest and staged file of the store (not its lock file)."""
    files = store.rglob("*") if store.exists() else []
    return sorted(p for p in files if p.is_file() and p != store / "lock")


def padded_bomb(entries: int = 120, entry_bytes: int = 999_000) -> io.BytesIO:
    """The shape that passes the ratio check: many text entries each just under the per-entry
    threshold, and enough random bytes that the archive as a whole compresses less than 100:1."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(entries):
            archive.writestr(f"src/part{i}.py", b"a" * (entry_bytes - 8) + b"%07d\n" % i)
        archive.writestr("pad.bin", os.urandom(entries * entry_bytes // 85))
    buffer.seek(0)
    return buffer


def test_a_padded_many_entry_bomb_under_the_ratio_is_refused_by_the_expanded_size(
    store: Path,
) -> None:
    bomb = padded_bomb()
    expanded = sum(i.file_size for i in zipfile.ZipFile(bomb).infolist())
    assert expanded > 100_000_000 and expanded < 100 * bomb.getbuffer().nbytes  # ratio < 100
    bomb.seek(0)
    opened = mock.patch.object(zipfile.ZipFile, "open", side_effect=AssertionError("read"))
    with opened, pytest.raises(SnapshotError) as info:
        freeze_archive(bomb, "bomb.zip", store)
    # Refused on the declared sizes, before one entry was read: nothing staged, nothing stored.
    assert "expands to more than 100,000,000 bytes" in str(info.value)
    assert stored(store) == []


def test_the_expanded_size_limit_is_a_parameter(store: Path) -> None:
    upload = padded_bomb(entries=12, entry_bytes=100_000)
    with pytest.raises(SnapshotError, match="more than 1,000,000 bytes"):
        freeze_archive(upload, "small.zip", store, max_uncompressed_bytes=1_000_000)
    upload.seek(0)
    assert len(freeze_archive(upload, "small.zip", store).files) == 12


def test_streamed_bytes_past_the_limit_stop_the_read(store: Path) -> None:
    # A header that lies (declares 10 bytes for a 2 MB entry): the streamed counter refuses it
    # as it reads, so no more than the limit is ever decompressed.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.py", b"x = 1\n")
    upload = io.BytesIO(buffer.getvalue())
    read: list[int] = []
    real_read = zipfile.ZipExtFile.read

    def lying_read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        read.append(n)
        real_read(self, n)
        return b"y" * n

    with (
        mock.patch.object(zipfile.ZipExtFile, "read", lying_read),
        pytest.raises(SnapshotError, match="expands to more than 200,000 bytes"),
    ):
        freeze_archive(upload, "liar.zip", store, max_uncompressed_bytes=200_000)
    assert sum(read) <= 200_000 + (1 << 16)
    assert stored(store) == []


def test_too_many_entries_is_refused_naming_the_limit(store: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(6):
            archive.writestr(f"f{i}.py", b"x = 1\n")
    with pytest.raises(SnapshotError, match="more than 5 entries") as info:
        freeze_archive(buffer, "many.zip", store, max_entries=5)
    assert "HARNESS_ARCHIVE_MAX_ENTRIES" in str(info.value)
    assert stored(store) == []
