"""Security rules for Python source, driven by the ast (so strings/comments never match)."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from agents.analysis.base import (
    AWS_KEY_RE,
    is_secret_name,
    is_secret_value,
    make_finding,
    masked_line,
)
from agents.analysis.finding import RawFinding
from agents.analysis.py_context import (
    PyContext,
    is_const,
    is_dynamic_string,
    is_str_const,
    keyword,
    passes,
)

_SUBPROCESS_FUNCS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.Popen",
        "subprocess.check_call",
        "subprocess.check_output",
    }
)
_ALWAYS_SHELL = frozenset(
    {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"}
)
_PICKLE_LIKE = frozenset(
    {
        "pickle.load",
        "pickle.loads",
        "cPickle.load",
        "cPickle.loads",
        "marshal.load",
        "marshal.loads",
        "dill.load",
        "dill.loads",
        "shelve.open",
        "jsonpickle.decode",
        "yaml.unsafe_load",
    }
)
_SAFE_YAML_LOADERS = ("SafeLoader", "CSafeLoader", "BaseLoader")
_SQL_METHODS = frozenset({"execute", "executemany", "executescript", "raw", "extra"})
_WEAK_HASHES = frozenset({"md5", "sha1"})


def check_security(ctx: PyContext) -> Iterator[RawFinding]:
    """Yield security findings for one parsed module."""
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Call):
            yield from _call_rules(ctx, node)
        elif isinstance(node, ast.Attribute):
            name = ctx.qualname(node)
            if name in ("ssl.CERT_NONE", "ssl._create_unverified_context"):
                parent = ctx.parents.get(node)
                if not (isinstance(parent, ast.Call) and parent.func is node):
                    yield ctx.finding(
                        "sec.tls",
                        node,
                        confidence=0.85,
                        extra=f"`{name}` turns off certificate checks.",
                    )
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            yield from _assignment_rules(ctx, node)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=False):
                if is_str_const(key) and isinstance(key, ast.Constant):
                    yield from _secret(ctx, str(key.value), value)


def _call_rules(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    # eval/exec: only the builtins; obj.eval() or a local def eval() are different things.
    if (
        ctx.is_builtin_call(call, "eval")
        or ctx.is_builtin_call(call, "exec")
        or name in ("builtins.eval", "builtins.exec")
    ):
        literal = bool(call.args) and is_str_const(call.args[0])
        yield ctx.finding(
            "sec.eval",
            call,
            confidence=0.6 if literal else 0.9,
            severity="medium" if literal else None,
            extra=f"`{name}()` is called on " + ("a literal." if literal else "a runtime value."),
        )
    shell_kw = keyword(call, "shell")
    # A constant command string runs the same command every time: nothing to inject.
    constant = bool(call.args) and is_str_const(call.args[0])
    if constant and (name in _SUBPROCESS_FUNCS or name in _ALWAYS_SHELL):
        pass
    elif name in _SUBPROCESS_FUNCS and shell_kw is not None and not _falsy_literal(shell_kw.value):
        sure = is_const(shell_kw.value, True)
        yield ctx.finding(
            "sec.shell",
            call,
            confidence=0.9 if sure else 0.5,
            extra=f"`{name}(..., shell=True)` hands the string to /bin/sh.",
        )
    elif name in _ALWAYS_SHELL:
        yield ctx.finding(
            "sec.shell",
            call,
            confidence=0.85,
            extra=f"`{name}()` always runs its argument through a shell.",
        )
    if isinstance(call.func, ast.Attribute) and call.func.attr in _SQL_METHODS and call.args:
        yield from _sql(ctx, call)
    if name in _PICKLE_LIKE:
        yield ctx.finding(
            "sec.deserialize",
            call,
            confidence=0.8,
            extra=f"`{name}()` can run arbitrary code from its input.",
        )
    elif name == "yaml.load" and not _safe_yaml_loader(ctx, call):
        yield ctx.finding(
            "sec.deserialize",
            call,
            confidence=0.85,
            extra="`yaml.load()` without Loader=SafeLoader can build arbitrary Python objects.",
        )
    if passes(call, "verify", False):
        yield ctx.finding(
            "sec.tls", call, confidence=0.9, extra="`verify=False` disables certificate checks."
        )
    if name == "ssl._create_unverified_context":
        yield ctx.finding(
            "sec.tls",
            call,
            confidence=0.9,
            extra="An unverified SSL context accepts any certificate.",
        )
    yield from _weak_hash(ctx, call, name)
    if (
        isinstance(call.func, ast.Attribute)
        and call.func.attr == "run"
        and passes(call, "debug", True)
    ):
        yield ctx.finding(
            "sec.debug",
            call,
            confidence=0.8,
            severity="high",
            extra="`app.run(debug=True)` enables the Werkzeug debugger, which "
            "allows remote code execution if reachable.",
        )
    for kw in call.keywords:
        if kw.arg:
            yield from _secret(ctx, kw.arg, kw.value)


def falsy_shell_lines(ctx: PyContext) -> set[int]:
    """Lines of calls passing a falsy literal as `shell=`: bandit reads some of them (`shell=()`)
    as a shell, so its shell issues on these lines are dropped."""
    return {
        line
        for node in ast.walk(ctx.tree)
        if isinstance(node, ast.Call)
        and (kw := keyword(node, "shell")) is not None
        and _falsy_literal(kw.value)
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }


def _falsy_literal(node: ast.AST) -> bool:
    """`shell=False` but also `shell=0`, `None`, `""`, `[]`, `()`, `{}`: subprocess only tests
    truthiness, so none of these starts a shell."""
    if isinstance(node, ast.Constant):
        return not node.value
    return (isinstance(node, (ast.List, ast.Tuple, ast.Set)) and not node.elts) or (
        isinstance(node, ast.Dict) and not node.keys
    )


def _safe_yaml_loader(ctx: PyContext, call: ast.Call) -> bool:
    loader = keyword(call, "Loader")
    node = loader.value if loader else (call.args[1] if len(call.args) > 1 else None)
    if node is None:
        return False
    return (ctx.qualname(node) or "").endswith(_SAFE_YAML_LOADERS)


def _weak_hash(ctx: PyContext, call: ast.Call, name: str) -> Iterator[RawFinding]:
    algo = ""
    if name.startswith("hashlib.") and name.split(".", 1)[1] in _WEAK_HASHES:
        algo = name.split(".", 1)[1]
    elif name == "hashlib.new" and call.args and is_str_const(call.args[0]):
        value = str(call.args[0].value).lower()  # type: ignore[attr-defined]
        algo = value if value in _WEAK_HASHES else ""
    if not algo:
        return
    if passes(call, "usedforsecurity", False):
        return  # explicitly declared a non-security checksum
    yield ctx.finding("sec.weak_hash", call, confidence=0.7, extra=f"`{name}` uses {algo.upper()}.")


def _sql(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    arg = call.args[0]
    method = call.func.attr  # type: ignore[attr-defined]
    if is_dynamic_string(arg):
        yield ctx.finding(
            "sec.sql",
            call,
            confidence=0.85,
            extra=f"The query passed to `.{method}()` is assembled with string formatting.",
        )
        return
    if not isinstance(arg, ast.Name):
        return
    built_at = _dynamic_assignment_line(ctx, call, arg.id)
    if built_at:
        yield ctx.finding(
            "sec.sql",
            call,
            confidence=0.75,
            extra=f"`{arg.id}` passed to `.{method}()` is built with string "
            f"formatting on line {built_at}.",
        )


def _dynamic_assignment_line(ctx: PyContext, call: ast.Call, var: str) -> int:
    """Line where `var` was last given a formatted string before `call` in the same scope."""
    scope = ctx.enclosing_function(call)
    found = 0
    for node in ast.walk(scope):
        line = getattr(node, "lineno", 0)
        if line >= call.lineno:
            continue
        value: ast.AST | None = None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == var for t in node.targets
        ):
            value = node.value
        elif (
            isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == var
            and isinstance(node.op, ast.Add)
        ):
            value = node.value
            if not is_str_const(value):
                found = max(found, line)
                continue
        if value is not None:
            # A later clean reassignment resets; keep the latest assignment's verdict.
            if is_dynamic_string(value):
                found = max(found, line)
            elif line > found:
                found = 0
    return found


def _assignment_rules(ctx: PyContext, node: ast.Assign | ast.AnnAssign) -> Iterator[RawFinding]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if node.value is None:
        return
    for target in targets:
        name = (
            target.id
            if isinstance(target, ast.Name)
            else (target.attr if isinstance(target, ast.Attribute) else None)
        )
        if name is None:
            continue
        if name == "DEBUG" and is_const(node.value, True) and ctx.parents.get(node) is ctx.tree:
            yield ctx.finding(
                "sec.debug",
                node,
                confidence=0.7,
                extra="Module-level `DEBUG = True` is easy to ship to production.",
            )
        if name == "check_hostname" and is_const(node.value, False):
            yield ctx.finding(
                "sec.tls",
                node,
                confidence=0.8,
                extra="`check_hostname = False` accepts certificates for any host.",
            )
        yield from _secret(ctx, name, node.value)


def _secret(ctx: PyContext, name: str, value: ast.AST) -> Iterator[RawFinding]:
    if not (is_str_const(value) and isinstance(value, ast.Constant) and is_secret_name(name)):
        return
    literal = str(value.value)
    if not is_secret_value(name, literal) or AWS_KEY_RE.search(literal) or "PRIVATE KEY" in literal:
        return  # placeholders are fine; AWS keys / PEM blocks have their own text rules
    line = value.lineno
    yield make_finding(
        "sec.secret",
        ctx.path,
        ctx.lines,
        line,
        line,
        confidence=0.75,
        extra=f"`{name}` is assigned a string literal.",
        evidence=masked_line(ctx.lines[line - 1], literal),
    )
