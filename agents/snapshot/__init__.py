"""Immutable, content-addressed snapshots of a run's target.

Modules: ``base`` (manifest, blob store, builder, errors), ``directory`` (freeze a directory),
``archive`` (freeze an uploaded zip/tar), ``reader`` (``Snapshot``: list, read, search),
``store`` (where this deployment keeps them; a per-process cache of opened ones), ``gc``
(remove what no run references).

At launch the target (a directory under an allowed root, or an uploaded archive) is frozen into a
store so agents never read the live directory. Store layout::

    objects/<sha256[:2]>/<sha256>   one read-only blob per distinct file content
    manifests/<key>.json            one manifest per target (``SnapshotManifest.key``)
    tmp/                            staging; emptied after every freeze
    lock                            freezes commit under its shared lock, ``gc`` removes under
                                    its exclusive one

Contracts:

* Only UTF-8 text files are kept; everything else is listed in ``SnapshotManifest.skipped`` with a
  reason, and so is every file left out by an exclude (``excludes``: defaults and a launch's
  globs). The manifest ``digest`` depends only on the kept (path, content) pairs, so the same
  content always gives the same digest, whatever the mtimes or the walk order. The manifest is
  stored under its ``key``: the digest and what is the target's own (source, skipped files), so
  two targets with the same kept files share the digest and the blobs but each keeps its own
  skipped list. A run opens its snapshot by that key.
* A freeze either writes a complete manifest or no manifest at all. Blobs are staged under
  ``tmp/`` and only moved into ``objects/`` once every check passed.
* Symlinks are never followed, archives are never extracted to disk, and every path handed to
  ``Snapshot`` is normalised and refused if it tries to leave the snapshot.
* Every refusal is a ``SnapshotError`` whose message can be shown to a user as-is.
"""

from agents.snapshot.archive import freeze_archive
from agents.snapshot.base import SnapshotError, SnapshotManifest, UnsafePathError, normalise_path
from agents.snapshot.directory import freeze_directory, target_label
from agents.snapshot.excludes import DEFAULT_EXCLUDES, NO_EXCLUDES, Excludes, exclude_patterns
from agents.snapshot.gc import Garbage, collect_garbage
from agents.snapshot.reader import Snapshot
from agents.snapshot.store import open_snapshot, snapshot_store

__all__ = [
    "DEFAULT_EXCLUDES",
    "NO_EXCLUDES",
    "Excludes",
    "Garbage",
    "Snapshot",
    "SnapshotError",
    "SnapshotManifest",
    "UnsafePathError",
    "collect_garbage",
    "exclude_patterns",
    "freeze_archive",
    "freeze_directory",
    "normalise_path",
    "open_snapshot",
    "snapshot_store",
    "target_label",
]
