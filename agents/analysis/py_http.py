"""Rules about what a web handler sends back: HTML, headers, errors, framing, state on GET.

- XSS in hand-built HTML: request data formatted into text that becomes the response body
  (`self.wfile.write`, `HttpResponse`, `make_response`, or the return value of a view) with no
  escaping on the way. A `<meta http-equiv="refresh">` built that way is an open redirect.
- Header injection: request data in a header value (`send_header`, `headers[...] = ...`) with
  no CR/LF stripped. `Location` is reported as an open redirect.
- Exception disclosure: `traceback.format_exc()` (or `str(exc)`) sent in a response.
- Clickjacking: framing protection switched off (`@xframe_options_exempt`, X-Frame-Options
  ALLOWALL or deleted, Django `MIDDLEWARE` without `XFrameOptionsMiddleware`), or an
  `http.server` handler serving HTML that never sends X-Frame-Options / frame-ancestors.
- CSRF by design: a GET handler that writes to the database (INSERT/UPDATE/DELETE).
- Predictable randomness that leaves the function: see `py_random`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import FUNC_NODES, PyContext, is_dynamic_string, is_str_const
from agents.analysis.py_random import random_leaving
from agents.analysis.py_taint import Flow, is_handler_class

_RESPONSE_CALLS = frozenset(
    {
        "django.http.HttpResponse",
        "django.http.response.HttpResponse",
        "django.http.HttpResponseBadRequest",
        "django.http.HttpResponseServerError",
        "flask.make_response",
        "flask.Response",
        "werkzeug.wrappers.Response",
        "aiohttp.web.Response",
        "starlette.responses.HTMLResponse",
        "fastapi.responses.HTMLResponse",
    }
)
_ROUTE_DECORATORS = ("route", "get", "post", "put", "patch", "delete", "view_config", "api_view")
_TRACEBACK = frozenset(
    f"traceback.{f}" for f in ("format_exc", "format_exception", "format_tb", "format_stack")
)
_HEADER_CALLS = frozenset({"send_header", "add_header", "putheader"})
_WRITE_SQL = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|DROP|ALTER|TRUNCATE)\b", re.I)
_FRAMING_TEXT = ("x-frame-options", "frame-ancestors")


def check_http(ctx: PyContext, all_flows: list[Flow]) -> Iterator[RawFinding]:
    """Yield the response-side findings of one parsed module."""
    for flow in all_flows:
        errors = _sends_errors(ctx, flow.func)
        if flow.reads_request or errors:
            body, sinks = _response_body(ctx, flow)
            if flow.reads_request:
                yield from _xss(ctx, flow, body, sinks)
                yield from _headers(ctx, flow)
            if errors:
                yield from _disclosure(ctx, flow, body, sinks)
        yield from _state_on_get(ctx, flow)
    yield from _clickjacking(ctx)
    yield from random_leaving(ctx)


# --- what goes into the response ------------------------------------------------------------


def _is_view(ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if (ctx.qualname(target) or "").rsplit(".", 1)[-1] in _ROUTE_DECORATORS:
            return True
    return any(a.arg in ("request", "req") for a in func.args.args)


def _response_body(ctx: PyContext, flow: Flow) -> tuple[set[str], list[ast.AST]]:
    """(names whose value ends up in the response body, the expressions sent)."""
    func = flow.func
    sinks: list[ast.AST] = []
    view = _is_view(ctx, func)
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            name = ctx.qualname(node.func) or ""
            if name in _RESPONSE_CALLS or (flow.handler and name == "self.wfile.write"):
                sinks += [*node.args[:1], *(k.value for k in node.keywords if k.arg)]
        elif (
            isinstance(node, ast.Return)
            and node.value is not None
            and view
            and ctx.enclosing_function(node) is func
            and _is_body(ctx, node.value)
        ):
            sinks.append(node.value)
    body = {n.id for s in sinks for n in ast.walk(s) if isinstance(n, ast.Name)}
    pairs = _assignments(func)
    changed = True
    while changed:
        changed = False
        for _node, name, value in pairs:
            if name in body:
                new = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)} - body
                if new:
                    body |= new
                    changed = True
    return body, sinks


def _is_body(ctx: PyContext, value: ast.AST) -> bool:
    """A view's return value that is the body itself: text, or a response made from it (not
    `send_file(...)`, `render_template(...)`, `redirect(...)`, `jsonify(...)`)."""
    if not isinstance(value, ast.Call):
        return True
    if (ctx.qualname(value.func) or "") in _RESPONSE_CALLS:
        return True
    return isinstance(value.func, ast.Attribute) and value.func.attr in ("format", "join")


def _assignments(func: ast.AST) -> list[tuple[ast.stmt, str, ast.AST]]:
    out: list[tuple[ast.stmt, str, ast.AST]] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.append((node, target.id, node.value))
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    out += [
                        (node, t.id, v)
                        for t, v in zip(target.elts, node.value.elts, strict=False)
                        if isinstance(t, ast.Name)
                    ]
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            out.append((node, node.target.id, node.value))
    return out


def _builds_text(node: ast.AST, augmented: bool) -> bool:
    if augmented or is_dynamic_string(node):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "replace", "join", "sub")
    )


def _is_meta_refresh(node: ast.AST) -> bool:
    return any(
        is_str_const(c) and "http-equiv" in str(c.value).lower() and "refresh" in str(c.value)
        for c in ast.walk(node)
        if isinstance(c, ast.Constant)
    )


def _xss(ctx: PyContext, flow: Flow, body: set[str], sinks: list[ast.AST]) -> Iterator[RawFinding]:
    reported = False
    for node, name, value in _assignments(flow.func):
        augmented = isinstance(node, ast.AugAssign)
        if name in body and _builds_text(value, augmented) and flow.from_request(ctx, value):
            reported = True
            yield _html_finding(ctx, node, value)
    if reported:
        return  # the body's parts are reported where they are built, not again where sent
    for sent in sinks:
        if _builds_text(sent, False) and flow.from_request(ctx, sent):
            yield _html_finding(ctx, sent, sent)


def _html_finding(ctx: PyContext, node: ast.AST, value: ast.AST) -> RawFinding:
    if _is_meta_refresh(value):
        return ctx.finding(
            "sec.open_redirect",
            node,
            confidence=0.7,
            extra="Request data sets the URL of a `<meta http-equiv=refresh>` redirect.",
        )
    return ctx.finding(
        "sec.xss",
        node,
        title="Request data in hand-built HTML (XSS)",
        confidence=0.7,
        extra="Request data is formatted into the response body without HTML escaping "
        "(html.escape / markupsafe.escape).",
    )


# --- headers --------------------------------------------------------------------------------


def _strips_crlf(func: ast.AST, node: ast.AST) -> bool:
    """CR/LF handled in the value itself or where a name in it was assigned
    (`rid = q.replace("\\r", "").replace("\\n", "")`)."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    parts = [node, *(value for _s, name, value in _assignments(func) if name in names)]
    return any(_mentions_crlf(part) for part in parts)


def _is_crlf(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and any(c in str(node.value) for c in "\r\n")


def _mentions_crlf(node: ast.AST) -> bool:
    """A replace/strip/sub of CR or LF, or a `"\\n" in value` test (reject), in `node`."""
    for n in ast.walk(node):
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("replace", "sub", "translate", "strip", "split", "splitlines")
            and any(_is_crlf(a) for a in n.args)
        ):
            return True
        if isinstance(n, ast.Compare) and _is_crlf(n.left):
            return True
    return False


def _header_writes(node: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, ast.AST]]:
    """(statement or call, header name node, value node) for every header the code sets."""
    for n in ast.walk(node):
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in _HEADER_CALLS
            and len(n.args) >= 2
        ):
            yield n, n.args[0], n.args[1]
        elif isinstance(n, ast.Assign):
            for target in n.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Attribute)
                    and target.value.attr == "headers"
                ):
                    yield n, target.slice, n.value


def _headers(ctx: PyContext, flow: Flow) -> Iterator[RawFinding]:
    for node, key, value in _header_writes(flow.func):
        if not flow.from_request(ctx, value) or _strips_crlf(flow.func, value):
            continue
        header = str(key.value) if isinstance(key, ast.Constant) else ""
        if header.lower() == "location":
            yield ctx.finding(
                "sec.open_redirect",
                node,
                confidence=0.7,
                extra="Request data is the `Location` of a redirect.",
            )
        else:
            yield ctx.finding(
                "sec.header_injection",
                node,
                confidence=0.65,
                extra=f"Request data goes into the `{header or '…'}` header unfiltered.",
            )


# --- errors sent to the client --------------------------------------------------------------


def debug_only(ctx: PyContext, node: ast.AST) -> bool:
    """Inside `x if settings.DEBUG else y` or `if DEBUG:`: shown to developers only."""
    cur = ctx.parents.get(node)
    while cur is not None and not isinstance(cur, FUNC_NODES):
        if isinstance(cur, (ast.If, ast.IfExp)) and any(
            (isinstance(n, ast.Name) and n.id == "DEBUG")
            or (isinstance(n, ast.Attribute) and n.attr == "DEBUG")
            for n in ast.walk(cur.test)
        ):
            return True
        cur = ctx.parents.get(cur)
    return False


def _sends_errors(ctx: PyContext, func: ast.AST) -> bool:
    """Cheap pre-check for `_disclosure`: a traceback call or a named except handler."""
    return any(
        (isinstance(n, ast.ExceptHandler) and n.name)
        or (isinstance(n, ast.Call) and (ctx.qualname(n.func) or "") in _TRACEBACK)
        for n in ast.walk(func)
    )


def _disclosure(
    ctx: PyContext, flow: Flow, body: set[str], sinks: list[ast.AST]
) -> Iterator[RawFinding]:
    sent = {id(n) for s in sinks for n in ast.walk(s)}
    assigned = {
        id(n): stmt
        for stmt, name, value in _assignments(flow.func)
        if name in body
        for n in ast.walk(value)
    }
    exc_names = {h.name for h in ast.walk(flow.func) if isinstance(h, ast.ExceptHandler) and h.name}
    for call in (n for n in ast.walk(flow.func) if isinstance(n, ast.Call)):
        name = ctx.qualname(call.func) or ""
        if name in _TRACEBACK:
            strength = 0.7
        elif (
            isinstance(call.func, ast.Name)
            and call.func.id in ("str", "repr")
            and call.args
            and isinstance(call.args[0], ast.Name)
            and call.args[0].id in exc_names
        ):
            strength = 0.45
        else:
            continue
        if (id(call) in sent or id(call) in assigned) and not debug_only(ctx, call):
            yield ctx.finding(
                "sec.info_disclosure",
                assigned.get(id(call), call),
                confidence=strength,
                severity="medium" if strength > 0.5 else "low",
                extra=f"`{ast.unparse(call)[:60]}` is sent to the client.",
            )


# --- state changes on GET -------------------------------------------------------------------


def _is_get_only(ctx: PyContext, flow: Flow) -> bool:
    func = flow.func
    if flow.handler:
        return func.name == "do_GET"
    for deco in func.decorator_list:
        if not isinstance(deco, ast.Call):
            continue
        last = (ctx.qualname(deco.func) or "").rsplit(".", 1)[-1]
        if last == "get":
            return True
        if last == "route":
            methods = next((k.value for k in deco.keywords if k.arg == "methods"), None)
            if methods is None:
                return True
            if isinstance(methods, (ast.List, ast.Tuple)):
                values = {str(e.value).upper() for e in methods.elts if isinstance(e, ast.Constant)}
                return values == {"GET"}
    return False


def _state_on_get(ctx: PyContext, flow: Flow) -> Iterator[RawFinding]:
    if not _is_get_only(ctx, flow):
        return
    for call in (n for n in ast.walk(flow.func) if isinstance(n, ast.Call)):
        if not (isinstance(call.func, ast.Attribute) and call.func.attr.startswith("execute")):
            continue
        texts = [
            str(c.value)
            for a in call.args[:1]
            for c in ast.walk(a)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        ]
        if any(_WRITE_SQL.match(t) for t in texts):
            yield ctx.finding(
                "sec.csrf",
                call,
                confidence=0.6,
                title="State changed by a GET request (CSRF)",
                extra=f"`{flow.func.name}` answers GET and writes to the database; any page "
                "can make a visitor's browser send it.",
            )


# --- framing --------------------------------------------------------------------------------


def _clickjacking(ctx: PyContext) -> Iterator[RawFinding]:
    for node in ast.walk(ctx.tree):
        if isinstance(node, FUNC_NODES):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if (ctx.qualname(target) or "").endswith("xframe_options_exempt"):
                    yield ctx.finding(
                        "sec.clickjacking",
                        deco,
                        confidence=0.75,
                        extra=f"`@xframe_options_exempt` lets any site frame `{node.name}`.",
                    )
        elif isinstance(node, ast.Delete):
            if any(_names_frame_header(t) for t in node.targets):
                yield ctx.finding(
                    "sec.clickjacking", node, confidence=0.7, extra="X-Frame-Options removed."
                )
        elif isinstance(node, ast.Assign):
            yield from _framing_setting(ctx, node)
    for stmt, key, value in _header_writes(ctx.tree):
        if (
            isinstance(key, ast.Constant)
            and str(key.value).lower() == "x-frame-options"
            and is_str_const(value)
            and str(value.value).upper().startswith("ALLOW")  # type: ignore[attr-defined]
        ):
            yield ctx.finding(
                "sec.clickjacking", stmt, confidence=0.75, extra="X-Frame-Options allows framing."
            )
    yield from _bare_http_server(ctx)


def _names_frame_header(node: ast.AST) -> bool:
    return isinstance(node, ast.Subscript) and (
        isinstance(node.slice, ast.Constant) and str(node.slice.value).lower() == "x-frame-options"
    )


def _framing_setting(ctx: PyContext, node: ast.Assign) -> Iterator[RawFinding]:
    names = [t.id for t in node.targets if isinstance(t, ast.Name)]
    value = node.value
    if (
        "X_FRAME_OPTIONS" in names
        and is_str_const(value)
        and str(value.value).upper().startswith("ALLOW")  # type: ignore[attr-defined]
    ):
        yield ctx.finding(
            "sec.clickjacking", node, confidence=0.75, extra="`X_FRAME_OPTIONS` allows framing."
        )
    if "MIDDLEWARE" in names and isinstance(value, (ast.List, ast.Tuple)) and value.elts:
        paths = [str(e.value) for e in value.elts if isinstance(e, ast.Constant)]
        if (
            len(paths) == len(value.elts)
            and any(p.startswith("django.") for p in paths)
            and not any(p.endswith("XFrameOptionsMiddleware") for p in paths)
        ):
            yield ctx.finding(
                "sec.clickjacking",
                node,
                confidence=0.65,
                extra="Django's `MIDDLEWARE` has no `XFrameOptionsMiddleware`.",
            )


def _bare_http_server(ctx: PyContext) -> Iterator[RawFinding]:
    """An `http.server` handler that serves HTML and never mentions framing protection."""
    text = "\n".join(ctx.lines).lower()
    if any(t in text for t in _FRAMING_TEXT) or "<html" not in text:
        return
    for cls in (n for n in ast.walk(ctx.tree) if is_handler_class(n)):
        for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "send_response":
                yield ctx.finding(
                    "sec.clickjacking",
                    call,
                    confidence=0.5,
                    severity="low",
                    extra="This handler serves HTML without X-Frame-Options or a CSP "
                    "frame-ancestors directive, so any site can frame it.",
                )
                return
