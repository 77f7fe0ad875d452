"""Reading a frozen snapshot: listing, reading and searching, confined to its manifest."""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agents.snapshot.base import SnapshotError, SnapshotManifest, Store, normalise_path

MAX_PATTERN_CHARS = 200
MAX_SEARCH_LINE_CHARS = 2000  # long (minified) lines are searched only up to here
MAX_RESULT_LINE_CHARS = 300
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
# Best-effort guard against catastrophic backtracking: a quantified group that itself contains a
# quantifier, e.g. (a+)+ or (\w*\s)*. Python's re has no timeout, so refuse the shape instead.
_NESTED_QUANTIFIER_RE = re.compile(r"\([^()]*[*+}][^()]*\)[*+{]")


class Snapshot:
    """Read-only view of a frozen snapshot. Every path argument goes through ``normalise_path``."""

    _CACHE_SIZE = 64

    def __init__(self, store: Path, manifest: SnapshotManifest) -> None:
        self._store = Store(store)
        self.manifest = manifest
        self._cache: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def open(cls, store: Path, key: str) -> Snapshot:
        """Open the snapshot whose manifest is stored under ``key`` (``SnapshotManifest.key``;
        a store written before manifests were keyed per target names them by their digest,
        which opens too). ``SnapshotError`` if it does not exist or is not what it says."""
        if not isinstance(key, str) or not _DIGEST_RE.fullmatch(key):
            raise SnapshotError("Invalid snapshot reference.")
        path = Store(store).manifest_path(key)
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise SnapshotError(f"Snapshot {key[:12]} does not exist.") from exc
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"Snapshot {key[:12]} cannot be read.") from exc
        manifest = SnapshotManifest.from_dict(data)
        if key not in (manifest.key, manifest.digest):
            raise SnapshotError(f"Snapshot {key[:12]} is inconsistent.")
        return cls(store, manifest)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def key(self) -> str:
        return self.manifest.key

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
        return self.read_text(path).splitlines()[start - 1 : end]

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
            head, sep, _ = file_path[len(prefix) :].partition("/")
            child = children.setdefault(
                head, {"name": head, "type": "dir" if sep else "file", "size": 0}
            )
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

    def search(
        self, pattern: str, *, regex: bool = False, path_prefix: str = "", max_results: int = 200
    ) -> list[dict[str, Any]]:
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
                    results.append(
                        {"path": file_path, "line": number, "text": line[:MAX_RESULT_LINE_CHARS]}
                    )
                    if len(results) >= max_results:
                        return results
        return results
