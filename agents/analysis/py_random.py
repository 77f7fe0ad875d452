"""Predictable randomness leaving the function: a `random` value returned by a public function.

Reporting every use of `random` (bandit B311) would bury the report, and values that end up in
a token, password, cookie or session name are already reported by `sec.weak_random` in
`py_framework`. Between the two: a value that *leaves* the function may become an id, token or
password in a caller, so it is reported at low severity and confidence, when
- the returned value is the random value itself or its text (`str(r)`, `"".join(...)`), not a
  quantity computed from it (`base * random.uniform(1, 2)` is a delay);
- `choice`/`sample` pick from an alphabet (`string.ascii_letters`, a literal), not from a list
  of servers or replicas;
- the function is public and its name does not say what the value is for (jitter, backoff,
  delay, retry, shuffle, colour, sample, test).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import FUNC_NODES, PyContext, is_str_const
from agents.analysis.py_framework import secret_context

_RANDOM = frozenset(
    f"random.{f}"
    for f in ("random", "randint", "randrange", "choice", "choices", "sample", "getrandbits")
) | {"random.uniform"}
_RANDOM_OK_NAMES = ("jitter", "backoff", "delay", "sleep", "retry", "shuffle", "colo", "sample")


def random_leaving(ctx: PyContext) -> Iterator[RawFinding]:
    for call in (n for n in ast.walk(ctx.tree) if isinstance(n, ast.Call)):
        name = ctx.qualname(call.func) or ""
        if name not in _RANDOM or secret_context(ctx, call):
            continue
        func = ctx.enclosing_function(call)
        if not isinstance(func, FUNC_NODES) or func.name.startswith("_"):
            continue
        if any(w in func.name.lower() for w in (*_RANDOM_OK_NAMES, "test")):
            continue
        if _returned(ctx, call, func):
            yield ctx.finding(
                "sec.weak_random",
                call,
                confidence=0.4,
                severity="low",
                title="Predictable random value returned",
                extra=f"`{func.name}` returns a `{name}()` value; if a caller uses it as an id, "
                "token or password it can be predicted.",
            )


def _as_value(ctx: PyContext, call: ast.Call) -> ast.AST | None:
    """The expression that *is* the random value: the call itself, or its text (`str(r)`,
    `"".join(...)`, `f"{r}"`). Arithmetic (`base * random.uniform(1, 2)`) makes a quantity
    such as a delay, not an identifier, so it stops here."""
    name = ctx.qualname(call.func) or ""
    if name in ("random.choice", "random.choices", "random.sample"):
        # Picking from a list (servers, replicas) is not making a code; picking from an
        # alphabet is.
        population = call.args[0] if call.args else None
        text = ast.unparse(population) if population is not None else ""
        if not (is_str_const(population) or any(w in text for w in ("string.", "ascii", "digit"))):
            return None
    cur: ast.AST = call
    while True:
        parent = ctx.parents.get(cur)
        if (
            isinstance(parent, ast.Call)
            and (
                (isinstance(parent.func, ast.Name) and parent.func.id in ("str", "hex", "format"))
                or (isinstance(parent.func, ast.Attribute) and parent.func.attr == "join")
            )
        ) or isinstance(
            parent, (ast.GeneratorExp, ast.ListComp, ast.FormattedValue, ast.JoinedStr)
        ):
            cur = parent
        else:
            return cur


def _text_of_name(node: ast.AST | None) -> str:
    """`x`, `str(x)` or `f"{x}"` -> "x"; anything else -> ""."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        node = node.args[0] if node.func.id in ("str", "hex") else None
    elif isinstance(node, ast.JoinedStr) and len(node.values) == 1:
        node = getattr(node.values[0], "value", None)
    return node.id if isinstance(node, ast.Name) else ""


def _returned(ctx: PyContext, call: ast.Call, func: ast.AST) -> bool:
    value = _as_value(ctx, call)
    if value is None:
        return False
    cur = ctx.parents.get(value)
    if isinstance(cur, ast.Return):
        return True
    if isinstance(cur, ast.Assign):
        targets = {t.id for t in cur.targets if isinstance(t, ast.Name)}
        return any(
            isinstance(r, ast.Return) and _text_of_name(r.value) in targets for r in ast.walk(func)
        )
    return False
