"""The README's where-to-look table stays true: every path it names exists, and every function,
class or table it names in a row is defined in one of that row's files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TABLE_HEAD = "| question | file |"
QUESTIONS = (
    "where is an agent's result stored",
    "where does cancel happen",
    "where is the budget reserved",
    "where is the concurrency cap enforced",
    "where are websocket messages rendered",
    "where is the SARIF export",
    "where is the synthesis agent created",
    "where is a finding's approval decided",
)


def _rows() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(TABLE_HEAD)
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        question, answer = (cell.strip() for cell in line.strip("|").split("|", 1))
        rows.append((question, answer))
    return rows


def _defined(path: Path) -> set[str]:
    """Top-level names and class attributes/methods defined in a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_the_table_answers_the_everyday_questions() -> None:
    asked = [q for q, _ in _rows()]
    for question in QUESTIONS:
        assert any(q.startswith(question) for q in asked), question


@pytest.mark.parametrize(("question", "answer"), _rows())
def test_every_named_path_and_name_exists(question: str, answer: str) -> None:
    quoted = re.findall(r"`([^`]+)`", answer)
    paths = [q for q in quoted if "/" in q]
    assert paths, f"row without a path: {question}"
    for path in paths:
        assert (ROOT / path).exists(), f"{question}: {path} does not exist"
    files = [ROOT / p for p in paths if p.endswith(".py")]
    for name in (q for q in quoted if "/" not in q and " " not in q):
        parts = name.split(".")
        if not files or not all(part.isidentifier() for part in parts):
            continue
        defined = set().union(*(_defined(f) for f in files))
        assert parts[-1] in defined or parts[0] in defined, f"{question}: {name} not defined"
