"""Reliability rules for Python source (ast based)."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import (
    FUNC_NODES,
    PyContext,
    has_star_kwargs,
    is_const,
    keyword,
    passes,
)

_HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "request")
_REQUESTS_FUNCS = frozenset(
    {f"requests.{m}" for m in _HTTP_METHODS} | {f"requests.api.{m}" for m in _HTTP_METHODS}
)
_HTTPX_FUNCS = frozenset({f"httpx.{m}" for m in (*_HTTP_METHODS, "stream")})
_URLOPEN = frozenset({"urllib.request.urlopen", "urllib2.urlopen"})
_MUTABLE_CALLS = frozenset(
    {
        "list",
        "dict",
        "set",
        "bytearray",
        "collections.defaultdict",
        "collections.OrderedDict",
        "collections.deque",
        "collections.Counter",
    }
)


def check_reliability(ctx: PyContext) -> Iterator[RawFinding]:
    """Yield reliability findings for one parsed module."""
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.ExceptHandler):
            yield from _except_rules(ctx, node)
        elif isinstance(node, ast.Call):
            yield from _timeout(ctx, node)
            if ctx.is_builtin_call(node, "open") and _leaks(ctx, node):
                yield ctx.finding("rel.open_leak", node, confidence=0.6)
        elif isinstance(node, (*FUNC_NODES, ast.Lambda)):
            yield from _mutable_defaults(ctx, node)


def _only_silences(body: list[ast.stmt]) -> bool:
    """True when a handler body does nothing useful: pass/continue/`...`/return None."""
    for stmt in body:
        if isinstance(stmt, (ast.Pass, ast.Continue)):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring or `...`
        if isinstance(stmt, ast.Return) and (stmt.value is None or is_const(stmt.value, None)):
            continue
        return False
    return True


def _except_rules(ctx: PyContext, handler: ast.ExceptHandler) -> Iterator[RawFinding]:
    if handler.type is None:
        reraises = any(isinstance(s, ast.Raise) for s in handler.body)
        silent = _only_silences(handler.body)
        extra = (
            "It also swallows the error."
            if silent
            else "It re-raises, but still intercepts SystemExit/KeyboardInterrupt."
            if reraises
            else ""
        )
        yield ctx.finding(
            "rel.bare_except",
            handler,
            end_node=handler,
            confidence=0.95,
            severity="low" if reraises else ("high" if silent else None),
            extra=extra,
            evidence=ctx.lines[handler.lineno - 1].strip(),
        )
        return
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    broad = [ctx.qualname(t) for t in types if ctx.qualname(t) in ("Exception", "BaseException")]
    if broad and _only_silences(handler.body):
        end = handler.body[-1]
        yield ctx.finding(
            "rel.swallowed_exception",
            handler,
            end_node=end,
            confidence=0.85,
            extra=f"`except {broad[0]}` with a body that only passes.",
        )


def _timeout(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    timeout = keyword(call, "timeout")
    if name in _HTTPX_FUNCS:
        # httpx applies a 5 s default timeout, so only an explicit timeout=None is a problem.
        if passes(call, "timeout", None):
            yield ctx.finding(
                "rel.no_timeout",
                call,
                confidence=0.85,
                extra=f"`{name}(timeout=None)` disables httpx's default timeout.",
            )
        return
    if name not in _REQUESTS_FUNCS and name not in _URLOPEN:
        return
    if timeout is None and not has_star_kwargs(call):
        if name in _URLOPEN and len(call.args) >= 3:
            return  # urlopen(url, data, timeout) passed positionally
        yield ctx.finding(
            "rel.no_timeout", call, confidence=0.85, extra=f"`{name}()` waits forever by default."
        )
    elif passes(call, "timeout", None):
        yield ctx.finding(
            "rel.no_timeout", call, confidence=0.85, extra=f"`{name}(timeout=None)` waits forever."
        )


def _leaks(ctx: PyContext, call: ast.Call) -> bool:
    """True when an open() result is neither a with-item, returned, nor closed explicitly."""
    parent = ctx.parents.get(call)
    if isinstance(parent, (ast.withitem, ast.Return, ast.Yield)):
        return False
    # Handed straight to a response that owns and closes the file (Django/Flask streaming).
    if isinstance(parent, ast.Call) and (ctx.qualname(parent.func) or "").rsplit(".", 1)[-1] in (
        "FileResponse",
        "StreamingHttpResponse",
        "send_file",
        "FileWrapper",
    ):
        return False
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        target = parent.targets[0]
        owner = target.value if isinstance(target, ast.Attribute) else target
        if not isinstance(owner, ast.Name):
            return True
        if isinstance(target, ast.Attribute):
            return False  # stored on an object (self.fh): its lifetime is managed elsewhere
        var = owner.id
        scope = ctx.enclosing_function(call)
        for node in ast.walk(scope):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "close"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == var
            ):
                return False
            if (
                isinstance(node, ast.withitem)
                and isinstance(node.context_expr, ast.Name)
                and node.context_expr.id == var
            ):
                return False
            if (
                isinstance(node, ast.Return)
                and isinstance(node.value, ast.Name)
                and node.value.id == var
            ):
                return False
    return True


def _mutable_defaults(ctx: PyContext, fn: ast.AST) -> Iterator[RawFinding]:
    args: ast.arguments = fn.args  # type: ignore[attr-defined]
    for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
        mutable = isinstance(
            default, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
        )
        if isinstance(default, ast.Call):
            mutable = (ctx.qualname(default.func) or "") in _MUTABLE_CALLS
        if mutable:
            yield ctx.finding(
                "rel.mutable_default",
                default,
                confidence=0.9,
                evidence=ctx.lines[default.lineno - 1].strip(),
            )
