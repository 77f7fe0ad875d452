"""Where this deployment keeps snapshots, and a per-process cache of opened ones."""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from agents.snapshot.reader import Snapshot


def snapshot_store() -> Path:
    return Path(settings.DATA_DIR) / "snapshots"


def open_snapshot(key: str) -> Snapshot:
    """The snapshot stored under ``key`` (``Run.snapshot_ref``) in this deployment's store."""
    return _open(snapshot_store(), key)


@functools.lru_cache(maxsize=32)
def _open(store: Path, key: str) -> Snapshot:
    """Snapshots are immutable, so an opened one can be shared by every agent of a process."""
    return Snapshot.open(store, key)
