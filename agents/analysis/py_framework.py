"""Web-framework checks bandit does not make (Django, Flask, Jinja, aiohttp).

Bandit looks at one call at a time and knows no framework conventions, so it cannot tell that
`open(name)` is dangerous *because* `name` came from `request.args`, that `csrf_exempt` turns
a protection off, or that `random.choice` is building a password. These rules do, with a light
intra-function taint: a local name is tainted when it is assigned from request data (or from
another tainted name), and a sink reached by tainted data is reported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from agents.analysis.base import is_secret_name, is_secret_value, masked_line
from agents.analysis.finding import RawFinding
from agents.analysis.py_context import FUNC_NODES, PyContext, is_const, is_str_const, keyword
from agents.analysis.py_flows import fixed_host
from agents.analysis.py_taint import (
    PASS_THROUGH,
    REQUEST_ATTRS,
    REQUEST_NAMES,
    SANITIZERS,
    graphql_arguments,
    names_reached,
)

_PATH_SINKS = frozenset({"open", "io.open", "flask.send_file", "os.remove", "os.unlink"})
_HTTP_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")
_SSRF_SINKS = frozenset(
    {f"{lib}.{verb}" for lib in ("requests", "httpx") for verb in _HTTP_VERBS}
    | {"urllib.request.urlopen", "urllib.request.Request", "urllib.urlopen"}
)
_REDIRECT_SINKS = frozenset(
    {
        "flask.redirect",
        "django.shortcuts.redirect",
        "django.http.HttpResponseRedirect",
        "django.http.HttpResponsePermanentRedirect",
        "aiohttp.web.HTTPFound",
    }
)
_SSTI_SINKS = frozenset({"flask.render_template_string", "jinja2.Template"})
_SAFE_MARKERS = frozenset(
    {"django.utils.safestring.mark_safe", "markupsafe.Markup", "flask.Markup", "jinja2.Markup"}
)
_CSRF_EXEMPT = frozenset({"django.views.decorators.csrf.csrf_exempt"})
_RANDOM_FUNCS = frozenset(
    f"random.{f}"
    for f in ("random", "randint", "randrange", "choice", "choices", "sample", "getrandbits")
)
_SECRETISH = (
    "token",
    "otp",
    "password",
    "passwd",
    "secret",
    "nonce",
    "salt",
    "pin",
    "reset",
    "session",
    "sessid",
    "cookie",
    "csrf",
    "api_key",
    "apikey",
)


def check_framework(ctx: PyContext) -> Iterator[RawFinding]:
    """Yield framework-aware security findings for one parsed module."""
    for node in ast.walk(ctx.tree):
        if isinstance(node, FUNC_NODES):
            yield from _decorators(ctx, node)
            yield from _taint(ctx, node)
        elif isinstance(node, ast.Call):
            yield from _calls(ctx, node)
        elif isinstance(node, ast.Assign):
            yield from _config_assignments(ctx, node)


# --- calls that need no data flow -----------------------------------------------------------


def _calls(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    if name in _SAFE_MARKERS and call.args and not is_str_const(call.args[0]):
        yield ctx.finding(
            "sec.xss",
            call,
            confidence=0.6,
            extra=f"`{name.rsplit('.', 1)[-1]}()` marks a runtime value as safe HTML.",
        )
    if name in _RANDOM_FUNCS and secret_context(ctx, call):
        yield ctx.finding(
            "sec.weak_random",
            call,
            confidence=0.75,
            extra=f"`{name}()` produces a value used as a token, OTP or password.",
        )


def secret_context(ctx: PyContext, node: ast.AST) -> bool:
    """True when the value ends up in a name (variable or function) that holds a secret."""
    names: list[str] = []
    cur: ast.AST | None = node
    statement: ast.AST | None = None
    while cur is not None and not isinstance(cur, ast.Module):
        if statement is None and isinstance(cur, ast.stmt):
            statement = cur
        if isinstance(cur, ast.Assign):
            names += [t.id for t in cur.targets if isinstance(t, ast.Name)]
            names += [t.attr for t in cur.targets if isinstance(t, ast.Attribute)]
        elif isinstance(cur, FUNC_NODES):
            names.append(cur.name)
            break
        cur = ctx.parents.get(cur)
    # The text the value is formatted into counts too: "Set-Cookie: SESSIONID=%s" % random…
    if statement is not None:
        names += [
            c.value
            for c in ast.walk(statement)
            if isinstance(c, ast.Constant) and isinstance(c.value, str) and len(c.value) < 500
        ]
    return any(word in n.lower() for n in names for word in _SECRETISH)


def _decorators(
    ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef
) -> Iterator[RawFinding]:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = ctx.qualname(target) or ""
        # Flask-WTF: `csrf = CSRFProtect(app)` then `@csrf.exempt`.
        if name in _CSRF_EXEMPT or name.endswith("csrf.exempt"):
            yield ctx.finding(
                "sec.csrf",
                deco,
                confidence=0.8,
                extra=f"`@{name.rsplit('.', 1)[-1]}` switches the CSRF check off for "
                f"`{func.name}`.",
            )


def _config_assignments(ctx: PyContext, node: ast.Assign) -> Iterator[RawFinding]:
    """`app.config["SECRET_KEY"] = "…"`, `app.config["DEBUG"] = True`, CSRF switched off."""
    for target in node.targets:
        key = (
            str(target.slice.value)
            if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
            else target.id
            if isinstance(target, ast.Name)
            else None
        )
        if key is None:
            continue
        if key in ("WTF_CSRF_ENABLED", "CSRF_ENABLED") and is_const(node.value, False):
            yield ctx.finding("sec.csrf", node, confidence=0.8, extra=f"`{key} = False`.")
        if key in ("MIDDLEWARE", "MIDDLEWARE_CLASSES") and _django_middleware_without_csrf(
            node.value
        ):
            yield ctx.finding(
                "sec.csrf",
                node,
                confidence=0.7,
                extra=f"Django's `{key}` has no `CsrfViewMiddleware`.",
            )
        if not isinstance(target, ast.Subscript):
            continue  # plain names are the security module's (DEBUG, secrets)
        if key == "DEBUG" and is_const(node.value, True):
            yield ctx.finding(
                "sec.debug", node, confidence=0.7, extra="`config['DEBUG'] = True` in code."
            )
        value = node.value
        if is_secret_name(key) and isinstance(value, ast.Constant) and is_str_const(value):
            literal = str(value.value)
            if is_secret_value(key, literal):
                yield ctx.finding(
                    "sec.secret",
                    node,
                    confidence=0.75,
                    extra=f"`config[{key!r}]` is assigned a string literal.",
                    evidence=masked_line(ctx.lines[node.lineno - 1], literal),
                )


def _django_middleware_without_csrf(value: ast.AST) -> bool:
    """A literal list of Django middleware paths that leaves the CSRF middleware out. Lists
    built at runtime (`[*BASE, ...]`) are not judged: the check may be in the part we cannot
    see."""
    if not isinstance(value, (ast.List, ast.Tuple)) or not value.elts:
        return False
    if not all(is_str_const(e) for e in value.elts):
        return False
    paths = [str(e.value) for e in value.elts if isinstance(e, ast.Constant)]
    return any(p.startswith("django.") for p in paths) and not any(
        p.endswith("CsrfViewMiddleware") for p in paths
    )


# --- light taint ----------------------------------------------------------------------------


def _is_source(node: ast.AST) -> bool:
    """`request.GET`, `self.request.POST`, `req.match_info`, `request.get_json()`, …"""
    if not isinstance(node, ast.Attribute) or node.attr not in REQUEST_ATTRS:
        return False
    base = node.value
    if isinstance(base, ast.Attribute) and base.attr in ("request", "context"):
        return True
    return isinstance(base, ast.Name) and base.id in REQUEST_NAMES


def _tainted(ctx: PyContext, node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Call):
        func = node.func
        callee = func.attr if isinstance(func, ast.Attribute) else (ctx.qualname(func) or "")
        callee = callee.rsplit(".", 1)[-1]
        # Only accessors and string/path builders pass request data through; any other call
        # (a form, a service, a model lookup) makes a new value, e.g. `redirect(launch(form))`.
        if callee in SANITIZERS or callee not in PASS_THROUGH:
            return False
    if _is_source(node) or (isinstance(node, ast.Name) and node.id in names):
        return True
    return any(_tainted(ctx, child, names) for child in ast.iter_child_nodes(node))


def _tainted_names(ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Local names assigned request data, directly or through other tainted names. Order and
    branches are ignored (a name tainted anywhere is tainted everywhere): cheap and safe."""
    assigns = [
        (target.id, node.value)
        for node in ast.walk(func)
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    ]
    seeds = graphql_arguments(ctx, func)
    return names_reached(assigns, lambda value, names: _tainted(ctx, value, names), seeds)


def _sink_arg(call: ast.Call, kw: str) -> ast.AST | None:
    if call.args:
        return call.args[0]
    found = keyword(call, kw)
    return found.value if found else None


def _taint(ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[RawFinding]:
    names = _tainted_names(ctx, func)
    for node in ast.walk(func):
        if not isinstance(node, ast.Call) or ctx.enclosing_function(node) is not func:
            continue
        name = ctx.qualname(node.func) or ""
        if name == "open" and not ctx.is_builtin_call(node, "open"):
            continue
        # `env.from_string(...)` on any Jinja environment compiles a template.
        is_ssti = name in _SSTI_SINKS or name.endswith(".from_string")
        rule = (
            "sec.path_traversal"
            if name in _PATH_SINKS
            else "sec.ssrf"
            if name in _SSRF_SINKS
            else "sec.open_redirect"
            if name in _REDIRECT_SINKS
            else "sec.ssti"
            if is_ssti
            else ""
        )
        arg = _sink_arg(node, "url") if rule else None
        if rule == "sec.ssrf" and arg is not None and fixed_host(arg):
            continue  # the server is fixed; the client picks a path on it
        if arg is not None and _tainted(ctx, arg, names):
            yield ctx.finding(
                rule,
                node,
                confidence=0.7,
                extra=f"Request data reaches `{name}()` in `{func.name}`.",
            )
