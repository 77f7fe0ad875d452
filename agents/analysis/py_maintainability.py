"""Maintainability rules for Python source (ast + tokenize based)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator

from agents.analysis.base import make_finding
from agents.analysis.finding import RawFinding, Severity
from agents.analysis.py_context import FUNC_NODES, PyContext

MAX_FUNCTION_LINES = 60
MAX_NESTING = 4
MAX_PARAMS = 7
MAX_COMPLEXITY = 15

TODO_RE = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
_NESTING = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.Try,
    ast.With,
    ast.AsyncWith,
    ast.Match,
    *((ast.TryStar,) if hasattr(ast, "TryStar") else ()),
)
_SCOPES = (*FUNC_NODES, ast.ClassDef)


def check_maintainability(ctx: PyContext) -> Iterator[RawFinding]:
    """Yield maintainability findings (functions, nesting, complexity) for one module.

    TODO comments and file length are handled by `todo_findings`/the engine because they
    also apply when a file does not parse.
    """
    yield from _nesting(ctx, ctx.tree, ctx.tree.body)
    for node in ast.walk(ctx.tree):
        if isinstance(node, FUNC_NODES):
            yield from _function_rules(ctx, node)
            yield from _nesting(ctx, node, node.body)


def _code_lines(ctx: PyContext, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Non-blank, non-comment body lines of the function, excluding signature and docstring."""
    skip: set[int] = set()
    first = fn.body[0] if fn.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        skip = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    count = 0
    start = fn.body[0].lineno if fn.body else fn.lineno
    for lineno in range(start, (fn.end_lineno or fn.lineno) + 1):
        text = ctx.lines[lineno - 1].strip() if lineno <= len(ctx.lines) else ""
        if text and not text.startswith("#") and lineno not in skip:
            count += 1
    return count


def _complexity(fn: ast.AST) -> int:
    """McCabe-style: 1 + decision points, not descending into nested defs/classes."""
    score = 1
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            continue
        if isinstance(
            node,
            (
                ast.If,
                ast.IfExp,
                ast.For,
                ast.AsyncFor,
                ast.While,
                ast.ExceptHandler,
                ast.match_case,
            ),
        ):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        stack.extend(ast.iter_child_nodes(node))
    return score


def _function_rules(
    ctx: PyContext, fn: ast.FunctionDef | ast.AsyncFunctionDef
) -> Iterator[RawFinding]:
    header = ctx.lines[fn.lineno - 1].strip()
    end = fn.end_lineno or fn.lineno
    length = _code_lines(ctx, fn)
    if length > MAX_FUNCTION_LINES:
        yield make_finding(
            "mnt.long_function",
            ctx.path,
            ctx.lines,
            fn.lineno,
            end,
            confidence=0.9,
            evidence=header,
            extra=f"`{fn.name}` has {length} code lines (limit {MAX_FUNCTION_LINES}).",
        )
    a = fn.args
    params = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if params and params[0] in ("self", "cls"):
        params = params[1:]
    if len(params) > MAX_PARAMS:
        yield make_finding(
            "mnt.too_many_params",
            ctx.path,
            ctx.lines,
            fn.lineno,
            fn.lineno,
            confidence=0.9,
            evidence=header,
            extra=f"`{fn.name}` takes {len(params)} parameters (limit {MAX_PARAMS}).",
        )
    score = _complexity(fn)
    if score > MAX_COMPLEXITY:
        yield make_finding(
            "mnt.complexity",
            ctx.path,
            ctx.lines,
            fn.lineno,
            end,
            confidence=0.8,
            evidence=header,
            extra=f"`{fn.name}` has cyclomatic complexity {score} (limit {MAX_COMPLEXITY}).",
        )


def _is_elif(ctx: PyContext, parent: ast.If) -> bool:
    if len(parent.orelse) != 1 or not isinstance(parent.orelse[0], ast.If):
        return False
    line = parent.orelse[0].lineno
    return 0 < line <= len(ctx.lines) and ctx.lines[line - 1].lstrip().startswith("elif")


def _blocks(ctx: PyContext, node: ast.stmt) -> Iterator[tuple[list[ast.stmt], bool]]:
    """Child statement blocks of a compound statement; flag True means "same depth" (elif)."""
    if isinstance(node, ast.If) and _is_elif(ctx, node):
        yield node.body, False
        yield node.orelse, True
        return
    for attr in ("body", "orelse", "finalbody"):
        block = getattr(node, attr, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block, False
    for handler in getattr(node, "handlers", []):
        yield handler.body, False
    for case in getattr(node, "cases", []):
        yield case.body, False


def _nesting(ctx: PyContext, owner: ast.AST, body: list[ast.stmt]) -> Iterator[RawFinding]:
    """One finding per function/module: where nesting first exceeds MAX_NESTING."""
    deepest = 0
    first_deep: ast.stmt | None = None
    stack: list[tuple[list[ast.stmt], int]] = [(body, 0)]
    while stack:
        block, depth = stack.pop()
        for stmt in block:
            if isinstance(stmt, _SCOPES):
                continue  # nested defs are measured on their own
            here = depth + 1 if isinstance(stmt, _NESTING) else depth
            if here > MAX_NESTING and (first_deep is None or stmt.lineno < first_deep.lineno):
                first_deep = stmt
            deepest = max(deepest, here)
            if isinstance(stmt, _NESTING):
                for child, same in _blocks(ctx, stmt):
                    stack.append((child, depth if same else here))
    if first_deep is not None:
        name = getattr(owner, "name", "module level")
        yield ctx.finding(
            "mnt.deep_nesting",
            first_deep,
            confidence=0.85,
            evidence=ctx.lines[first_deep.lineno - 1].strip(),
            extra=f"Nesting reaches {deepest} levels in `{name}` (limit {MAX_NESTING}).",
        )


def todo_findings(path: str, lines: list[str], text: str, python: bool) -> list[RawFinding]:
    """TODO/FIXME/XXX/HACK in comments. For Python, real COMMENT tokens (so strings never
    match); otherwise, and if tokenizing fails, comment-looking lines via regex."""
    hits: list[tuple[int, str]] = []
    if python:
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.COMMENT:
                    m = TODO_RE.search(tok.string)
                    if m:
                        hits.append((tok.start[0], m.group(1)))
        except (tokenize.TokenError, SyntaxError, ValueError):
            hits = []
            python = False
    if not python:
        comment = re.compile(
            r"(?:#|//|/\*|<!--|^\s*\*|^\s*--|^\s*;)[^\n]*?"
            r"\b(TODO|FIXME|XXX|HACK)\b"
        )
        for i, line in enumerate(lines, 1):
            m = comment.search(line)
            if m:
                hits.append((i, m.group(1)))
    out = []
    for lineno, marker in hits:
        severity: Severity = "low" if marker in ("FIXME", "HACK", "XXX") else "info"
        out.append(
            make_finding(
                "mnt.todo",
                path,
                lines,
                lineno,
                lineno,
                severity=severity,
                confidence=0.95 if python else 0.8,
                extra=f"{marker} comment.",
            )
        )
    return out
