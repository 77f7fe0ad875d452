"""Targets the launch form may offer: directories (and single documents) under the allowed roots.

The form only offers paths from this list, so a user can never type their way out of
``settings.HARNESS_TARGET_ROOTS``; the engine re-checks confinement when it freezes the snapshot.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

# Directories that are never a sensible target (and may be huge).
_SKIP = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache"}
# Single documents are offered for the one-document playbooks (multi-perspective review).
DOCUMENT_SUFFIXES = {".md", ".txt", ".rst"}


def available_targets() -> list[tuple[str, str]]:
    """(absolute path, label) for each allowed root, every directory up to two levels below it
    and every document directly in a root or in a first-level directory; sorted by label, hidden
    and build directories left out. Directory labels end with a slash."""
    found: dict[str, str] = {}
    for root in settings.HARNESS_TARGET_ROOTS:
        root = Path(root).resolve()
        if not root.is_dir():
            continue
        found[str(root)] = f"{root.name}/"
        for doc in _documents(root):
            found[str(doc)] = f"{root.name}/{doc.name}"
        for level_one in _subdirs(root):
            found[str(level_one)] = f"{root.name}/{level_one.name}/"
            for doc in _documents(level_one):
                found[str(doc)] = f"{root.name}/{level_one.name}/{doc.name}"
            for level_two in _subdirs(level_one):
                found[str(level_two)] = f"{root.name}/{level_one.name}/{level_two.name}/"
    # A path that is not valid UTF-8 cannot be rendered in the form nor come back from it: left
    # out (freezing a folder above it lists such files as skipped, by a readable name).
    return sorted(
        ((path, label) for path, label in found.items() if _utf8(path)), key=lambda item: item[1]
    )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _entries(path: Path) -> list[Path]:
    """The folder's entries by name, links left out (a target never leaves its root)."""
    try:
        return [p for p in sorted(path.iterdir(), key=lambda p: p.name) if not p.is_symlink()]
    except OSError:
        return []


def _documents(path: Path) -> list[Path]:
    return [p for p in _entries(path) if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES]


def _subdirs(path: Path) -> list[Path]:
    return [
        p
        for p in _entries(path)
        if p.is_dir() and not p.name.startswith(".") and p.name not in _SKIP
    ]
