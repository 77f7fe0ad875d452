"""Settings-level flaws: a whole app is weakened by one line of configuration.

- Django `PASSWORD_HASHERS` whose first entry (the one new passwords are hashed with) is MD5,
  SHA-1 or unsalted: stolen password tables crack in minutes.
- `SESSION_SERIALIZER` set to the pickle serializer: whoever can forge a session (a leaked
  `SECRET_KEY`, cookie sessions) runs code on the server.
- `SESSION_ENGINE` storing the session in a signed cookie while the key signing it is written in
  the settings: anyone with the source forges any session.
- `MIDDLEWARE` / old-style `MIDDLEWARE_CLASSES` without the CSRF middleware (in py_framework).
- debug switched on at runtime by what a client sends (`?debug=1` setting `app.debug`, a debug
  toolbar callback reading the query string or answering True for everyone), and Werkzeug's
  debugger with its console (`DebuggedApplication(app, evalex=True)`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import PyContext, is_const, is_str_const, passes
from agents.analysis.py_taint import Flow, is_request_source

_WEAK_HASHERS = ("MD5", "SHA1", "Unsalted", "Crypt")
_PICKLE_SESSIONS = ("PickleSerializer",)
_COOKIE_SESSIONS = "signed_cookies"


def check_settings(ctx: PyContext, all_flows: list[Flow]) -> Iterator[RawFinding]:
    """Yield the settings findings of one parsed module."""
    names = _module_settings(ctx)
    for name, (node, value) in names.items():
        if name == "PASSWORD_HASHERS":
            yield from _hashers(ctx, node, value)
        elif name == "SESSION_SERIALIZER" and _text(value).endswith(_PICKLE_SESSIONS):
            yield ctx.finding(
                "sec.deserialize",
                node,
                confidence=0.75,
                extra="Sessions are serialized with pickle: a forged or leaked session cookie "
                "runs code on the server.",
            )
        elif name == "SESSION_ENGINE" and _text(value).endswith(_COOKIE_SESSIONS):
            key = names.get("SECRET_KEY")
            if key is not None and is_str_const(key[1]):
                yield ctx.finding(
                    "sec.session_forgery",
                    node,
                    confidence=0.6,
                    extra="The session lives in a cookie signed with the `SECRET_KEY` written "
                    "in this file: anyone who has the source can forge any user's session.",
                )
    for flow in all_flows:
        if flow.reads_request:
            yield from _debug_by_request(ctx, flow.func)
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Call):
            yield from _debugger(ctx, node)
        elif isinstance(node, ast.Dict):
            yield from _toolbar_callback(ctx, node)


def _module_settings(ctx: PyContext) -> dict[str, tuple[ast.AST, ast.AST]]:
    """Top-level `NAME = value` of upper-case names (the last one wins, as in Django)."""
    out: dict[str, tuple[ast.AST, ast.AST]] = {}
    for node in ctx.tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    out[target.id] = (node, node.value)
    return out


def _text(value: ast.AST) -> str:
    return str(value.value) if isinstance(value, ast.Constant) else ""


def _hashers(ctx: PyContext, node: ast.AST, value: ast.AST) -> Iterator[RawFinding]:
    if not isinstance(value, (ast.List, ast.Tuple)) or not value.elts:
        return
    first = _text(value.elts[0]).rsplit(".", 1)[-1]
    if any(word in first for word in _WEAK_HASHERS):
        yield ctx.finding(
            "sec.weak_hash",
            value.elts[0],
            confidence=0.8,
            extra=f"New passwords are hashed with `{first}` (the first of "
            "`PASSWORD_HASHERS`), fast and unsalted or broken: a leaked table is cracked "
            "quickly. Put PBKDF2, Argon2 or bcrypt first.",
        )


def _debugger(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    if name.endswith("DebuggedApplication") and passes(call, "evalex", True):
        yield ctx.finding(
            "sec.debug",
            call,
            confidence=0.8,
            extra="Werkzeug's debugger with `evalex=True` gives every visitor who triggers an "
            "error a Python console on the server.",
        )


def _is_debug_target(node: ast.AST) -> bool:
    """`app.debug`, `settings.DEBUG`, `DEBUG`, `app.config["DEBUG"]`."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("debug", "DEBUG")
    if isinstance(node, ast.Name):
        return node.id == "DEBUG"
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value == "DEBUG"
    return False


def _debug_by_request(
    ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef
) -> Iterator[RawFinding]:
    """A function that reads the request and switches debug on: the client decides."""
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Assign)
            and any(_is_debug_target(t) for t in node.targets)
            and not is_const(node.value, False)
        ):
            yield ctx.finding(
                "sec.debug",
                node,
                confidence=0.6,
                extra=f"`{func.name}` reads the request and switches debug mode on: a "
                "client can turn on tracebacks and debug pages.",
            )
            return
    if "toolbar" in func.name.lower():
        yield ctx.finding(
            "sec.debug",
            func,
            end_node=func.args,
            confidence=0.55,
            extra=f"`{func.name}` shows the debug toolbar depending on what the client "
            "sends (a query parameter, a cookie or a header).",
        )


def _toolbar_callback(ctx: PyContext, node: ast.Dict) -> Iterator[RawFinding]:
    """`DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": lambda request: True}`: the toolbar,
    with the settings, SQL and headers it shows, for every visitor."""
    for key, value in zip(node.keys, node.values, strict=False):
        if not (isinstance(key, ast.Constant) and key.value == "SHOW_TOOLBAR_CALLBACK"):
            continue
        if isinstance(value, ast.Lambda) and (
            is_const(value.body, True) or any(is_request_source(n) for n in ast.walk(value.body))
        ):
            yield ctx.finding(
                "sec.debug",
                value,
                confidence=0.7,
                extra="The debug toolbar is shown to any visitor (or to whoever asks for it "
                "in the request), not only to developers on an internal address.",
            )
