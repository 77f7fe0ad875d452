"""Removing the snapshots no run references: ``manage.py gc_snapshots``, and the sweeper every
``HARNESS_SNAPSHOT_GC_S``.

A snapshot is referenced by every run that opens it (``Run.snapshot_ref``). One that a launch in
progress has just committed, before its run row exists, is spared by the grace
(``HARNESS_SNAPSHOT_GRACE_S``): ``agents.snapshot.gc`` removes nothing used more recently.
"""

from __future__ import annotations

from django.conf import settings

from agents.snapshot import Garbage, collect_garbage, snapshot_store
from runs.models import Run


def gc_snapshots(*, dry_run: bool = False, grace_s: float | None = None) -> Garbage:
    """Remove (``dry_run``: list) every manifest no run references and unused for the grace,
    the blobs no remaining manifest lists, and staging folders crashed freezes left."""
    # Read before the store is scanned: a run created after this query opens a manifest its
    # launch committed (or renewed) moments before, which the grace spares.
    referenced = {
        key or digest for key, digest in Run.objects.values_list("snapshot_key", "snapshot_digest")
    }
    return collect_garbage(
        snapshot_store(),
        referenced,
        grace_s=settings.HARNESS_SNAPSHOT_GRACE_S if grace_s is None else grace_s,
        dry_run=dry_run,
    )
