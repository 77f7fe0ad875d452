"""Where this deployment keeps snapshots, and a per-process cache of opened ones."""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from agents.snapshot.reader import Snapshot


def snapshot_store() -> Path:
    return Path(settings.DATA_DIR) / "snapshots"


@functools.lru_cache(maxsize=32)
def open_snapshot(digest: str) -> Snapshot:
    """Snapshots are immutable, so an opened one can be shared by every agent of a process."""
    return Snapshot.open(snapshot_store(), digest)
