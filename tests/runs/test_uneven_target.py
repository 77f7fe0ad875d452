"""The bench's generated target with uneven flaw density: every planted flaw is one the offline
analyzer reports, flaws sit only in the dense folders and the stray files, and a seed always
writes the same tree."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from agents.analysis.engine import analyze_code
from agents.playbooks import CODE_LENSES
from runs.benchmarks.uneven import write_uneven_target


def _found(root: Path) -> Counter[str]:
    per_file: Counter[str] = Counter()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for lens in CODE_LENSES:
            per_file[rel] += len(analyze_code(rel, path.read_text(), lens))
    return per_file


def test_every_planted_flaw_is_found_and_only_where_it_was_planted(tmp_path: Path) -> None:
    layout = write_uneven_target(tmp_path, seed=4, folders=8, files=6, flawed=2, stray=2)
    found = _found(tmp_path)
    assert sum(found.values()) == layout.planted > 0
    flawed_folders = {rel.split("/")[0] for rel, n in found.items() if n}
    assert flawed_folders <= {*layout.dense, *(f.split("/")[0] for f in layout.stray_files)}
    assert set(layout.dense) <= flawed_folders
    assert all(found[f] == 1 for f in layout.stray_files)
    assert len(list(tmp_path.rglob("*.py"))) == 8 * 6


def test_a_seed_always_writes_the_same_tree(tmp_path: Path) -> None:
    write_uneven_target(tmp_path / "a", seed=21, folders=5, files=4, flawed=1)
    write_uneven_target(tmp_path / "b", seed=21, folders=5, files=4, flawed=1)
    write_uneven_target(tmp_path / "c", seed=22, folders=5, files=4, flawed=1)

    def tree(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}

    assert tree(tmp_path / "a") == tree(tmp_path / "b") != tree(tmp_path / "c")
