"""API-side rules on request data (from `py_taint` flows) and on a few library calls:

- errors sent to the client: exception text or a traceback in a JSON/GraphQL error
  (`jsonify({"error": str(e)})`, `raise GraphQLError(str(e))`, an error handler returning the
  exception), for handlers of broad exceptions only (a `ValueError` message is usually meant);
- log injection: request data written to a log (a CR/LF in it forges log lines);
- mass assignment: request data as a model's fields (`User(**request.json)`,
  `.objects.create(**data)`, `setattr(obj, key, value)` over a request dict), and model forms or
  serializers exposing every field (`fields = "__all__"`);
- JWT signatures not verified (`verify=False`, `verify_signature: False`, the `none` algorithm);
- SSRF through HTTP client objects (`session.get(url)`, urllib3 pools, pycurl, socket-level
  clients) and weak password hashing spelled through hashlib/passlib/crypt;
- resource exhaustion: a request-chosen size or count driving a loop, an allocation, a sleep or
  a query limit with no upper bound in the function.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import PyContext, is_const, is_str_const, keyword
from agents.analysis.py_flows import fixed_host
from agents.analysis.py_http import debug_only
from agents.analysis.py_taint import (
    PASS_THROUGH,
    Flow,
    bindings,
    callee_name,
    is_request_source,
    names_reached,
)

_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception"})
_ERROR_RESPONSES = frozenset(
    {
        "jsonify",
        "JsonResponse",
        "JSONResponse",
        "Response",
        "HttpResponse",
        "HttpResponseServerError",
        "HttpResponseBadRequest",
        "json_response",
        "make_response",
        "GraphQLError",
        "HTTPException",
        "abort",
    }
)
_BROAD = frozenset({"Exception", "BaseException"})
_TRACEBACK = frozenset(
    {"format_exc", "format_exception", "format_tb", "format_stack", "print_exc", "extract_tb"}
)
_NUMBER_CALLS = frozenset({"int", "float", "abs", "round"})
_CLAMPS = frozenset({"min", "clamp", "max_value"})
# Comparisons that bound a number (`if n > 100`); `"size" in params` bounds nothing.
_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_NUMERIC_SINKS = frozenset(
    {"range", "sleep", "urandom", "bytearray", "token_bytes", "token_hex", "zeros", "ones"}
)
_LIMIT_METHODS = frozenset({"limit", "fetchmany", "paginate", "islice", "read", "recv"})
_HTTP_CLIENT = re.compile(r"session|client|http|pool|opener|browser|conn", re.I)
_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "request", "urlopen"})
_HTTP_MODULES = ("requests", "httpx", "aiohttp", "urllib3", "pycurl")
_SOCKET_CLIENTS = frozenset(
    {
        "socket.create_connection",
        "ftplib.FTP",
        "smtplib.SMTP",
        "telnetlib.Telnet",
        "xmlrpc.client.ServerProxy",
        "urllib3.PoolManager.request",
    }
)
_PASSLIB_WEAK = re.compile(
    r"(^|\.)(md5_crypt|apr_md5_crypt|des_crypt|bsdi_crypt|hex_md5|hex_sha1|ldap_md5|"
    r"ldap_sha1|ldap_plaintext|plaintext|lmhash|nthash|mysql323|mysql41|postgres_md5)$"
)
_MODEL_WRITES = frozenset({"create", "update", "get_or_create", "update_or_create", "insert"})


def check_api(ctx: PyContext, all_flows: list[Flow]) -> Iterator[RawFinding]:
    """Yield the API-side findings of one parsed module."""
    imports_http = any(
        alias.split(".", 1)[0] in _HTTP_MODULES for alias in ctx.aliases.values()
    ) or any(
        isinstance(n, ast.Import) and any(a.name.split(".")[0] in _HTTP_MODULES for a in n.names)
        for n in ctx.tree.body
    )
    clients = _client_names(ctx) if imports_http else set()
    for flow in all_flows:
        if flow.reads_request:
            yield from _log_injection(ctx, flow)
            yield from _mass_assignment(ctx, flow)
            yield from _exhaustion(ctx, flow)
            yield from _client_ssrf(ctx, flow, imports_http, clients)
        yield from _error_text(ctx, flow)
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Call):
            yield from _jwt(ctx, node)
            yield from _weak_password_hash(ctx, node)
        elif isinstance(node, ast.ClassDef) and node.name == "Meta":
            yield from _all_fields(ctx, node)


# --- errors ---------------------------------------------------------------------------------


def _mentions_error(ctx: PyContext, node: ast.AST, exc: str | None) -> str:
    """'traceback' / 'exception' when `node` carries a traceback or the exception's text
    (not when only shown in debug mode: `format_exc() if settings.DEBUG else "error"`)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and callee_name_plain(n) in _TRACEBACK:
            if debug_only(ctx, n):
                return ""
            return "traceback"
    if exc is None:
        return ""
    for n in ast.walk(node):
        if (
            isinstance(n, ast.Call)
            and callee_name_plain(n) in ("str", "repr")
            and n.args
            and isinstance(n.args[0], ast.Name)
            and n.args[0].id == exc
        ):
            return "exception"
        if isinstance(n, ast.FormattedValue) and getattr(n.value, "id", "") == exc:
            return "exception"
        if isinstance(n, ast.Attribute) and n.attr == "args" and getattr(n.value, "id", "") == exc:
            return "exception"
    return ""


def callee_name_plain(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _broad(handler: ast.ExceptHandler) -> bool:
    kind = handler.type
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    return any(getattr(n, "id", getattr(n, "attr", "")) in _BROAD for n in names)


def _error_text(ctx: PyContext, flow: Flow) -> Iterator[RawFinding]:
    """Exception text or tracebacks in what an except block or an error handler sends."""
    func = flow.func
    handlers: list[tuple[list[ast.stmt], str | None, bool]] = [
        (h.body, h.name, _broad(h)) for h in ast.walk(func) if isinstance(h, ast.ExceptHandler)
    ]
    deco = " ".join(ast.unparse(d) for d in func.decorator_list)
    if "errorhandler" in deco or "exception_handler" in deco or "format_error" in func.name:
        first = func.args.args[0].arg if func.args.args else None
        handlers.append((func.body, first, True))
    for body, exc, broad in handlers:
        for stmt in body:
            for node in ast.walk(stmt):
                sent: ast.AST | None = None
                if isinstance(node, ast.Call) and callee_name_plain(node) in _ERROR_RESPONSES:
                    sent = node
                elif isinstance(node, ast.Return) and isinstance(node.value, (ast.Dict, ast.Tuple)):
                    sent = node.value
                if sent is None:
                    continue
                what = _mentions_error(ctx, sent, exc)
                if debug_only(ctx, node):
                    continue  # under `if settings.DEBUG:`: developers only
                if what == "traceback" or (what and broad):
                    yield ctx.finding(
                        "sec.info_disclosure",
                        node,
                        confidence=0.7 if what == "traceback" else 0.5,
                        extra=f"The {what} text is sent in the error response of "
                        f"`{func.name}`; it can show code, paths, queries and data.",
                    )
                    return


# --- log injection --------------------------------------------------------------------------


def _is_logger_call(ctx: PyContext, call: ast.Call) -> bool:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in _LOG_METHODS:
        return False
    receiver = ctx.qualname(func.value) or ""
    return receiver == "logging" or "log" in receiver.rsplit(".", 1)[-1].lower()


def _url_only(node: ast.AST) -> bool:
    """`request.rel_url`, `request.path`: the server's parsed URL, percent-encoded, so it
    cannot carry a raw line break."""
    return isinstance(node, ast.Attribute) and node.attr in ("rel_url", "path", "url", "full_path")


def _log_injection(ctx: PyContext, flow: Flow) -> Iterator[RawFinding]:
    for call in (n for n in ast.walk(flow.func) if isinstance(n, ast.Call)):
        if not _is_logger_call(ctx, call):
            continue
        if any(isinstance(a, ast.Constant) and "%r" in str(a.value) for a in call.args[:1]):
            continue  # %r escapes line breaks
        if any(flow.from_request(ctx, a) and not _url_only(a) for a in call.args):
            yield ctx.finding(
                "sec.log_injection",
                call,
                confidence=0.5,
                extra="Request data is written to the log as is: a CR/LF in it forges log entries.",
            )


# --- mass assignment ------------------------------------------------------------------------


def _mass_assignment(ctx: PyContext, flow: Flow) -> Iterator[RawFinding]:
    func = flow.func
    allow_checked = {
        n.id
        for c in ast.walk(func)
        if isinstance(c, ast.Compare) and any(isinstance(o, (ast.In, ast.NotIn)) for o in c.ops)
        for n in ast.walk(c.left)
        if isinstance(n, ast.Name)
    }
    for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
        name = callee_name_plain(call)
        star = [k.value for k in call.keywords if k.arg is None]
        model_call = name[:1].isupper() or name in _MODEL_WRITES
        if model_call and any(flow.from_request(ctx, s) for s in star):
            what = f"`{name}(**…)`"
        elif (
            ctx.is_builtin_call(call, "setattr")
            and len(call.args) == 3
            and isinstance(call.args[1], ast.Name)
            and call.args[1].id not in allow_checked
            and flow.from_request(ctx, call.args[1])
        ):
            what = "`setattr()` with request-chosen attribute names"
        elif (
            name == "update"
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Attribute)
            and call.func.value.attr == "__dict__"
            and any(flow.from_request(ctx, a) for a in call.args)
        ):
            what = "`__dict__.update()`"
        else:
            continue
        yield ctx.finding(
            "sec.mass_assignment",
            call,
            confidence=0.6,
            extra=f"{what} copies the client's fields onto a model: a request can set "
            "fields it should not (`is_admin`, `owner`, `balance`).",
        )


def _all_fields(ctx: PyContext, meta: ast.ClassDef) -> Iterator[RawFinding]:
    """`class Meta: fields = "__all__"` in a ModelForm or ModelSerializer."""
    owner = ctx.parents.get(meta)
    if not isinstance(owner, ast.ClassDef):
        return
    bases = [ast.unparse(b) for b in owner.bases]
    if not any(b.endswith(("ModelForm", "ModelSerializer")) for b in bases):
        return
    for stmt in meta.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "fields" for t in stmt.targets)
            and isinstance(stmt.value, ast.Constant)
            and stmt.value.value == "__all__"
        ):
            yield ctx.finding(
                "sec.mass_assignment",
                stmt,
                confidence=0.35,
                severity="low",
                extra=f"`{owner.name}` accepts every model field from the client, including "
                "any added later. List the fields it may set.",
            )


# --- JWT ------------------------------------------------------------------------------------


def _jwt(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    if not re.search(r"(^|\.)(jwt|jose\.jwt|jws|JWT)\.(decode|encode)$|\.decode$", name):
        return
    if "jwt" not in name.lower() and "jws" not in name.lower():
        return
    reason = ""
    if passes(call, "verify", False) or passes(call, "do_verify", False):
        reason = "signature verification is turned off"
    options = keyword(call, "options")
    if options is not None and isinstance(options.value, ast.Dict):
        for key, value in zip(options.value.keys, options.value.values, strict=False):
            if (
                isinstance(key, ast.Constant)
                and key.value == "verify_signature"
                and is_const(value, False)
            ):
                reason = "`verify_signature` is False"
    for kw in ("algorithms", "algorithm"):
        found = keyword(call, kw)
        if found is not None and any(
            isinstance(c, ast.Constant) and str(c.value).lower() == "none"
            for c in ast.walk(found.value)
        ):
            reason = "the `none` algorithm (no signature) is accepted"
    if reason:
        yield ctx.finding(
            "sec.jwt",
            call,
            confidence=0.8,
            extra=f"`{name}`: {reason}; anyone can forge a token with any claims.",
        )


def passes(call: ast.Call, name: str, value: object) -> bool:
    found = keyword(call, name)
    return found is not None and is_const(found.value, value)


# --- SSRF through client objects, weak password hashing -------------------------------------


def _client_names(ctx: PyContext) -> set[str]:
    """Names bound to an HTTP client object (`s = requests.Session()`, `with httpx.Client() as
    c`), anywhere in the module."""
    out: set[str] = set()
    for node in ast.walk(ctx.tree):
        pairs: list[tuple[ast.AST, ast.AST]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            pairs = [(node.optional_vars, node.context_expr)]
        for target, value in pairs:
            if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                name = ctx.qualname(value.func) or ""
                if name.split(".", 1)[0] in _HTTP_MODULES:
                    out.add(target.id)
    return out


def _client_ssrf(
    ctx: PyContext, flow: Flow, imports_http: bool, clients: set[str]
) -> Iterator[RawFinding]:
    for call in (n for n in ast.walk(flow.func) if isinstance(n, ast.Call)):
        name = ctx.qualname(call.func) or ""
        url: ast.AST | None = None
        if name in _SOCKET_CLIENTS or name.endswith((".urlopen", "PoolManager.request")):
            url = call.args[0] if call.args else None
        elif (
            imports_http
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in _HTTP_VERBS
            and (
                _HTTP_CLIENT.search(ast.unparse(call.func.value))
                or getattr(call.func.value, "id", "") in clients
            )
            and name.split(".", 1)[0] not in ("flask", "session")
        ):
            args = list(call.args)
            if call.func.attr == "request" and args and is_str_const(args[0]):
                args = args[1:]
            found = keyword(call, "url")
            url = args[0] if args else (found.value if found else None)
        elif name.endswith("setopt") and len(call.args) == 2 and "URL" in ast.unparse(call.args[0]):
            url = call.args[1]
        if url is None or fixed_host(url) or not flow.from_request(ctx, url):
            continue
        yield ctx.finding(
            "sec.ssrf",
            call,
            confidence=0.6,
            extra=f"Request data chooses the address `{ast.unparse(call.func)[:40]}` connects to.",
        )


def _weak_password_hash(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    weak = ""
    if name == "hashlib.pbkdf2_hmac" and call.args and is_str_const(call.args[0]):
        algo = str(call.args[0].value).lower()  # type: ignore[attr-defined]
        weak = f"PBKDF2 with {algo}" if algo in ("md5", "sha1") else ""
    elif name == "crypt.crypt":
        salt = call.args[1] if len(call.args) > 1 else None
        if salt is None or (isinstance(salt, ast.Constant) and not str(salt.value).startswith("$")):
            weak = "DES crypt"
    elif _PASSLIB_WEAK.search(name.rsplit(".", 1)[0]) and name.rsplit(".", 1)[-1] in (
        "hash",
        "encrypt",
        "using",
    ):
        weak = name.rsplit(".", 2)[-2]
    if weak:
        yield ctx.finding(
            "sec.weak_hash",
            call,
            confidence=0.7,
            extra=f"Passwords hashed with {weak} are cracked quickly once leaked.",
        )


# --- resource exhaustion --------------------------------------------------------------------


def _numeric(ctx: PyContext, node: ast.AST, names: set[str]) -> bool:
    """Does `node` carry a number the client chose (through int()/float() and arithmetic)?"""
    if is_request_source(node) or (isinstance(node, ast.Name) and node.id in names):
        return True
    if isinstance(node, ast.Call):
        callee = callee_name(ctx, node)
        if callee in _NUMBER_CALLS or callee in PASS_THROUGH:
            parts = [*node.args]
            if isinstance(node.func, ast.Attribute):
                parts.append(node.func.value)
            return any(_numeric(ctx, p, names) for p in parts)
        return False
    if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Subscript)):
        return any(_numeric(ctx, c, names) for c in ast.iter_child_nodes(node))
    return False


def _exhaustion(ctx: PyContext, flow: Flow) -> Iterator[RawFinding]:
    func = flow.func
    pairs = bindings(func)
    names = names_reached(
        pairs, lambda value, known: _numeric(ctx, value, known), flow.request | set()
    )
    clamped = {
        n.id
        for c in ast.walk(func)
        if (isinstance(c, ast.Compare) and any(isinstance(o, _ORDER) for o in c.ops))
        or (isinstance(c, ast.Call) and callee_name_plain(c) in _CLAMPS)
        for n in ast.walk(c)
        if isinstance(n, ast.Name)
    }
    names -= clamped
    for node in ast.walk(func):
        arg: ast.AST | None = None
        if isinstance(node, ast.Call):
            callee = callee_name_plain(node)
            if callee in _NUMERIC_SINKS or callee in _LIMIT_METHODS:
                per_page = keyword(node, "per_page")
                arg = per_page.value if per_page else (node.args[-1] if node.args else None)
                if callee == "range" and node.args:
                    arg = node.args[1] if len(node.args) > 1 else node.args[0]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            if isinstance(node.left, (ast.Constant, ast.List)):
                arg = node.right
            elif isinstance(node.right, (ast.Constant, ast.List)):
                arg = node.left
            if isinstance(arg, ast.Constant):
                arg = None
            elif arg is not None and not isinstance(
                node.left if arg is node.right else node.right, (ast.List,)
            ):
                other = node.left if arg is node.right else node.right
                if not (isinstance(other, ast.Constant) and isinstance(other.value, (str, bytes))):
                    arg = None
        if arg is None or isinstance(arg, ast.Constant) or not _numeric(ctx, arg, names):
            continue
        if any(isinstance(n, ast.Name) and n.id in clamped for n in ast.walk(arg)):
            continue
        yield ctx.finding(
            "sec.dos",
            node,
            confidence=0.5,
            extra=f"A size or count the client chose drives `{ast.unparse(node)[:50]}` with no "
            "upper bound: one request can take the worker's CPU, memory or time.",
        )
        return
