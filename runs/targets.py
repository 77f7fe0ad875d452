"""Targets the launch form may offer: directories (and single documents) under the allowed roots.

The form only offers paths from this list, so a user can never type their way out of
``settings.HARNESS_TARGET_ROOTS``; the engine re-checks confinement when it freezes the snapshot.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

# Directories that are never a sensible target (and may be huge).
_SKIP = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache"}
DOCUMENT_SUFFIXES = {".md", ".txt", ".rst"}


def _label(root: Path, path: Path) -> str:
    rel = path.relative_to(root)
    return f"{root.name}/{rel}" if str(rel) != "." else root.name


def available_targets() -> list[tuple[str, str]]:
    """(absolute path, label) for every directory up to two levels below each allowed root, and
    every document directly in a root or one level below (the single-document playbooks need a
    file). Sorted by label; hidden and build directories are left out."""
    found: dict[str, str] = {}
    for root in settings.HARNESS_TARGET_ROOTS:
        root = Path(root).resolve()
        if not root.is_dir():
            continue
        for level_one in _children(root):
            if level_one.is_dir():
                found[str(level_one)] = _label(root, level_one) + "/"
                for level_two in _children(level_one):
                    if level_two.is_dir():
                        found[str(level_two)] = _label(root, level_two) + "/"
                    elif level_two.suffix in DOCUMENT_SUFFIXES:
                        found[str(level_two)] = _label(root, level_two)
            elif level_one.suffix in DOCUMENT_SUFFIXES:
                found[str(level_one)] = _label(root, level_one)
    return sorted(found.items(), key=lambda item: item[1])


def _children(path: Path) -> list[Path]:
    try:
        entries = list(path.iterdir())
    except OSError:
        return []
    return sorted(
        (
            p
            for p in entries
            if not p.name.startswith(".") and p.name not in _SKIP and not p.is_symlink()
        ),
        key=lambda p: p.name,
    )


def is_allowed_target(path: str) -> bool:
    return path in dict(available_targets())
