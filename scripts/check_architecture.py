"""Check the house rules of the repository's architecture.

    .venv/bin/python scripts/check_architecture.py [--root DIR]

Rules, checked over the Python files of the top-level packages agents/, runs/ and harness_site/
(migrations/ folders are skipped):

1. Imports go one way: runs -> agents -> harness_site. agents/ never imports runs (not even under
   `if TYPE_CHECKING:`), and harness_site/ imports neither agents nor runs, except the framework
   wiring files in WIRING_FILES, which may import runs. Why: the library `agents` must stay usable
   without the database and the web app that `runs` brings with it.
2. No first-party import (agents, runs, harness_site, or a relative import) inside a function or
   method body. Why: a function-level import hides a dependency and usually dodges an import
   cycle that should be fixed instead. Third-party lazy imports stay allowed (heavy libraries,
   libraries that must be imported after fork). A line ending in `# architecture: allow <reason>`
   is exempt from this rule only; the reason is required.
3. No Python file longer than MAX_LINES lines (the three packages plus scripts/, outside tests/
   and migrations/). Why: small files are easier to read, review and move.
4. Inside runs/, the rooms import downwards only (ROOMS): pages (the read side) above actions (every
   state change) above models; consumers and views both import pages and never each other's side:
   consumers never import views, pages never import actions, views or consumers, actions never
   import pages, views, consumers, forms or the engine, models import none of them; the API (api/)
   sits beside the views, over pages and actions, and imports neither views, consumers nor the
   engine. Why: what a page shows is built in one place for the first render and the live updates,
   and a page that writes, or a record that knows its callers, is a cycle waiting to happen.

Exits 1 listing every violation as `path:line: reason`, exits 0 with "architecture ok (N files)".
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("agents", "runs", "harness_site")
# Position in the one-way chain runs -> agents -> harness_site: a package may only import
# packages of the same or a lower layer.
LAYERS = {"harness_site": 0, "agents": 1, "runs": 2}
# Django's URLconf and the ASGI router must name the app's views and websocket routes, so these
# framework wiring files of harness_site may import `runs` (and only `runs`, never `agents`).
WIRING_FILES = frozenset({"harness_site/urls.py", "harness_site/asgi.py"})
WIRING_MAY_IMPORT = "runs"
MAX_LINES = 500
# Rule 4: (a file or folder of runs/, the modules it must not import).
_ABOVE_PAGES = ("runs.actions", "runs.views", "runs.consumers", "runs.engine")
ROOMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("runs/consumers.py", ("runs.views",)),
    ("runs/api/", ("runs.views", "runs.consumers", "runs.engine")),
    ("runs/pages/", _ABOVE_PAGES),
    ("runs/actions/", ("runs.pages", "runs.views", "runs.consumers", "runs.engine", "runs.forms")),
    ("runs/models/", ("runs.pages", *_ABOVE_PAGES)),
)
ALLOW_MARKER = "# architecture: allow"

Import = ast.Import | ast.ImportFrom


def _imports(node: ast.AST, in_function: bool = False) -> Iterator[tuple[Import, bool]]:
    """Every import under `node`, with whether it sits in a function body (at any depth)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, Import):
            yield child, in_function
        else:
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from _imports(child, nested)


def _targets(node: Import, package: tuple[str, ...]) -> list[str]:
    """The top-level package names an import statement reaches (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if node.level == 0:
        return [(node.module or "").split(".")[0]]
    keep = len(package) - node.level + 1
    return [package[0]] if keep > 0 else []  # beyond the top level: an ImportError anyway


def _modules(node: Import, package: tuple[str, ...]) -> list[str]:
    """The dotted modules an import statement names, ``from a import b`` giving ``a`` and
    ``a.b`` (b may be a module); relative imports resolved against ``package``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = list(package[: len(package) - node.level + 1]) if node.level else []
    module = ".".join([*base, *([node.module] if node.module else [])])
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def check_rooms(rel: Path, node: Import) -> list[tuple[int, str]]:
    """Rule 4 for one import statement of a module of runs/."""
    name = rel.as_posix()
    found = []
    for room, forbidden in ROOMS:
        if not (name == room or (room.endswith("/") and name.startswith(room))):
            continue
        for module in _modules(node, rel.parent.parts):
            bad = next((f for f in forbidden if module == f or module.startswith(f + ".")), None)
            if bad:
                why = f"rule 4: {room} must not import {bad} (pages > actions > models)"
                found.append((node.lineno, why))
                break
    return found


def _allow_reason(line: str) -> str | None:
    """The reason of an allow comment on the line, "" when it is empty, None without one."""
    at = line.find(ALLOW_MARKER)
    rest = line[at + len(ALLOW_MARKER) :] if at >= 0 else None
    if rest is None or (rest and not rest[0].isspace()):
        return None
    return rest.strip()


def check_layers_and_imports(rel: Path, source: str) -> list[tuple[int, str]]:
    """Rules 1 and 2 (and the allow comment) for one module of the three packages."""
    try:
        tree = ast.parse(source, filename=str(rel))
    except SyntaxError as exc:
        return [(exc.lineno or 1, f"cannot parse: {exc.msg}")]
    reasons = [_allow_reason(line) for line in source.splitlines()]
    empty = [n for n, reason in enumerate(reasons, 1) if reason == ""]
    found = [(n, "rule 2: '# architecture: allow' needs a reason") for n in empty]
    own, name = rel.parts[0], rel.as_posix()
    for node, in_function in _imports(tree):
        tops = _targets(node, rel.parent.parts)
        for top in dict.fromkeys(tops):
            if top not in LAYERS or LAYERS[top] <= LAYERS[own]:
                continue
            if name in WIRING_FILES and top == WIRING_MAY_IMPORT:
                continue
            why = f"rule 1: {own} must not import {top} (imports go runs -> agents -> harness_site)"
            found.append((node.lineno, why))
        first_party = (isinstance(node, ast.ImportFrom) and node.level > 0) or any(
            top in PACKAGES for top in tops
        )
        if own == "runs":
            found += check_rooms(rel, node)
        span = reasons[node.lineno - 1 : node.end_lineno or node.lineno]
        if in_function and first_party and not any(span):
            found.append((node.lineno, "rule 2: first-party import inside a function body"))
    return found


def check_length(source: str) -> list[tuple[int, str]]:
    """Rule 3 for one file."""
    count = len(source.splitlines())
    if count <= MAX_LINES:
        return []
    return [(MAX_LINES + 1, f"rule 3: {count} lines, the limit is {MAX_LINES}")]


def check(root: Path) -> tuple[int, list[str]]:
    """Check the tree under `root`: (files checked, violations as `path:line: reason`)."""
    checked = 0
    violations: list[str] = []
    for top in (*PACKAGES, "scripts"):
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root)
            layered = top in PACKAGES
            measured = "tests" not in rel.parts
            if "migrations" in rel.parts or not (layered or measured):
                continue
            checked += 1
            source = path.read_text(encoding="utf-8")
            found = check_layers_and_imports(rel, source) if layered else []
            found += check_length(source) if measured else []
            violations += [f"{rel.as_posix()}:{line}: {why}" for line, why in sorted(found)]
    return checked, violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default_root = Path(__file__).resolve().parents[1]
    parser.add_argument("--root", type=Path, default=default_root, help="repository root")
    args = parser.parse_args(argv)
    checked, violations = check(args.root.resolve())
    if violations:
        print("\n".join(violations))
        print(f"architecture: {len(violations)} violation(s) in {checked} files", file=sys.stderr)
        return 1
    print(f"architecture ok ({checked} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
