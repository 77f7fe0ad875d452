"""Flow rules: request data or a caller's value reaching a file, URL, XML, XPath or code sink.

Built on `py_taint`. Request data is reported at the rule's severity (confidence 0.7); a
parameter of a public function at low severity (confidence 0.45), since its callers may
validate it. Also here, because they need the module's constants rather than taint:
- SQL built from a module- or class-level template (`FMT = "... '{}'"`, then
  `cursor.execute(FMT.format(x))`), which bandit's B608 cannot see;
- lxml parsers configured to resolve entities or fetch over the network (XXE);
- which bandit XML findings parse a constant string of this module (not a risk: dropped).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import (
    FUNC_NODES,
    PyContext,
    is_const,
    is_str_const,
    keyword,
    passes,
)
from agents.analysis.py_taint import (
    Flow,
    callee_name,
    mentioning_names,
    names_reached,
    param_names,
    tainted,
    tainted_names,
)

_FILE_SINKS = frozenset(
    {
        "io.open",
        "codecs.open",
        "tarfile.open",
        "tarfile.TarFile",
        "tarfile.TarFile.open",
        "bz2.open",
        "bz2.BZ2File",
        "gzip.open",
        "lzma.open",
        "flask.send_file",
        "os.remove",
        "os.unlink",
        "shutil.rmtree",
    }
)
_BUILTIN_FILE_SINKS = ("open", "execfile")
_HTTP_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request", "stream")
_URL_SINKS = frozenset(
    {f"{lib}.{verb}" for lib in ("requests", "httpx") for verb in _HTTP_VERBS}
    | {
        "urllib.request.urlopen",
        "urllib.request.Request",
        "urllib.urlopen",
        "urllib2.urlopen",
        "urllib2.Request",
        "http.client.HTTPConnection",
        "http.client.HTTPSConnection",
        "httplib.HTTPConnection",
        "httplib.HTTPSConnection",
        "aiohttp.request",
    }
)
_LXML_PARSE = frozenset(
    f"lxml.etree.{f}" for f in ("parse", "fromstring", "XML", "XMLID", "iterparse")
)
_XPATH_METHODS = frozenset({"find", "findall", "findtext", "iterfind"})
_XML_MODULES = ("lxml.etree.", "xml.etree.", "defusedxml.")
_SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH|CREATE|DROP)\b", re.I)
_SQL_METHODS = frozenset({"execute", "executemany", "executescript", "raw", "mogrify"})
# Bandit's XML checks (B313-B320) about a parse of text; harmless on our own constant.
_BANDIT_XML = frozenset(f"bandit.B3{n}" for n in range(13, 21))


def sink_rule(ctx: PyContext, call: ast.Call) -> str:
    """The flow rule a call is a sink of ('' when none)."""
    name = ctx.qualname(call.func) or ""
    if any(ctx.is_builtin_call(call, b) for b in _BUILTIN_FILE_SINKS) or name in _FILE_SINKS:
        return "sec.path_traversal"
    return "sec.ssrf" if name in _URL_SINKS else ""


def _resolved_sink(ctx: PyContext, node: ast.AST, module_names: dict[str, ast.AST]) -> str:
    """Rule of a function passed as a value (`_get(urlopen, url)`), through module aliases."""
    seen = 0
    while isinstance(node, ast.Name) and node.id in module_names and seen < 5:
        node, seen = module_names[node.id], seen + 1
    name = ctx.qualname(node) or ""
    if name in _URL_SINKS:
        return "sec.ssrf"
    return "sec.path_traversal" if name in _FILE_SINKS else ""


_FIXED_HOST = re.compile(r"^[a-zA-Z][\w+.-]*://[^/?#{}%]+[/:?#]")


def fixed_host(node: ast.AST) -> bool:
    """A URL whose scheme and host are literal text (`f"http://127.0.0.1:{port}/x"`,
    `"https://api.example.com/" + path`): the caller picks a path, not the server."""
    first: ast.AST | None = None
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        first = node.left
        while isinstance(first, ast.BinOp) and isinstance(first.op, ast.Add):
            first = first.left
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        first = node.func.value if node.func.attr == "format" else None
    return isinstance(first, ast.Constant) and bool(_FIXED_HOST.match(str(first.value)))


def _first_arg(call: ast.Call, *names: str) -> ast.AST | None:
    if call.args:
        return call.args[0]
    for name in names:
        found = keyword(call, name)
        if found:
            return found.value
    return None


@dataclass
class _Summary:
    """What a private helper does with its parameters."""

    reaches: dict[int, str] = field(default_factory=dict)  # param index -> rule
    calls: list[tuple[int, int]] = field(default_factory=list)  # (callable param, data param)
    # A public helper is an API of its own: only request data passed to it is reported at the
    # call (a caller's value reaching it is the helper's own finding, if any).
    public: bool = False


def _summaries(ctx: PyContext) -> dict[str, _Summary]:
    out: dict[str, _Summary] = {}
    for func in ctx.tree.body:
        if not isinstance(func, FUNC_NODES):
            continue
        params = param_names(func)[:8]
        summary = _Summary(public=not func.name.startswith("_"))
        data = {i: tainted_names(ctx, func, {p}, attrs=False) for i, p in enumerate(params)}
        built = {j: mentioning_names(func, p) for j, p in enumerate(params)}
        for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
            rule = sink_rule(ctx, call)
            arg = _first_arg(call, "url", "file", "name")
            if rule == "sec.ssrf" and arg is not None and fixed_host(arg):
                rule = ""
            for i, names in data.items():
                if rule and arg is not None and tainted(ctx, arg, names, attrs=False):
                    summary.reaches.setdefault(i, rule)
                if isinstance(call.func, ast.Name) and any(
                    tainted(ctx, a, names, attrs=False) for a in call.args
                ):
                    summary.calls += [
                        (j, i) for j, made in built.items() if j != i and call.func.id in made
                    ]
        if summary.reaches or summary.calls:
            out[func.name] = summary
    return out


def _module_names(ctx: PyContext) -> dict[str, ast.AST]:
    """Module-level `NAME = value` bindings (also inside top-level if/try/with blocks)."""
    names: dict[str, ast.AST] = {}
    todo: list[ast.stmt] = list(ctx.tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, node.value)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            todo += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def _finding(
    ctx: PyContext, rule: str, node: ast.AST, flow: Flow, what: str, source: ast.AST
) -> RawFinding:
    """Request data at the rule's severity; a caller's value at low severity."""
    if flow.from_request(ctx, source):
        return ctx.finding(rule, node, confidence=0.7, extra=f"Request data reaches {what}.")
    return ctx.finding(
        rule,
        node,
        confidence=0.45,
        severity="low",
        extra=f"A parameter of `{flow.func.name}` reaches {what}; callers must validate it.",
    )


def check_flows(ctx: PyContext, all_flows: list[Flow]) -> Iterator[RawFinding]:
    """Yield the flow findings of one parsed module (`all_flows` from `py_taint.flows`)."""
    module_names = _module_names(ctx)
    summaries = _summaries(ctx)
    xml_names = _xml_names(ctx)
    for flow in all_flows:
        for call in (n for n in ast.walk(flow.func) if isinstance(n, ast.Call)):
            yield from _call(ctx, flow, call, summaries, module_names, xml_names)
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Call):
            yield from _unsafe_lxml_parser(ctx, node)
            yield from _sql_template(ctx, node, module_names)
            yield from _switches(ctx, node)
        elif isinstance(node, ast.Assign):
            yield from _cookie_settings(ctx, node)


def _call(
    ctx: PyContext,
    flow: Flow,
    call: ast.Call,
    summaries: dict[str, _Summary],
    module_names: dict[str, ast.AST],
    xml_names: set[str],
) -> Iterator[RawFinding]:
    name = ctx.qualname(call.func) or ""
    rule = sink_rule(ctx, call)
    arg = _first_arg(call, "url", "file", "name")
    if rule == "sec.ssrf" and arg is not None and fixed_host(arg):
        rule = ""
    if rule and arg is not None and flow.from_caller(ctx, arg):
        if not (rule == "sec.path_traversal" and _checks_paths(ctx, flow, arg)):
            yield _finding(ctx, rule, call, flow, f"`{name}()`", arg)
    elif name in _LXML_PARSE and arg is not None and flow.from_caller(ctx, arg):
        if len(call.args) < 2 and keyword(call, "parser") is None:
            what = f"`{name}()` with lxml's default parser"
            yield _finding(ctx, "sec.xxe", call, flow, what, arg)
    elif ctx.is_builtin_call(call, "compile") and arg is not None and flow.from_caller(ctx, arg):
        yield _finding(ctx, "sec.eval", call, flow, "`compile()`", arg)
    elif _is_xpath(ctx, call, xml_names) and arg is not None and flow.from_caller(ctx, arg):
        what = f"the XPath of `.{callee_name(ctx, call)}()`"
        yield _finding(ctx, "sec.xpath", call, flow, what, arg)
    if isinstance(call.func, ast.Name) and call.func.id in summaries:
        yield from _helper_call(ctx, flow, call, summaries[call.func.id], module_names)


def _checks_paths(ctx: PyContext, flow: Flow, arg: ast.AST) -> bool:
    """The function checks the path it opens: a prefix or containment test on a name the
    opened path is made of (`full.startswith(BASE)`, `p.is_relative_to(base)`,
    `os.path.commonpath([...])`)."""
    used = {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
    for n in ast.walk(flow.func):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
            continue
        checked: list[ast.AST] = []
        if n.func.attr in ("startswith", "is_relative_to"):
            checked = [n.func.value]
        elif n.func.attr == "commonpath":
            checked = list(n.args)
        if any(isinstance(x, ast.Name) and x.id in used for c in checked for x in ast.walk(c)):
            return True
    return False


def _helper_call(
    ctx: PyContext,
    flow: Flow,
    call: ast.Call,
    summary: _Summary,
    module_names: dict[str, ast.AST],
) -> Iterator[RawFinding]:
    helper = call.func.id  # type: ignore[attr-defined]
    args = call.args
    reaches = flow.from_request if summary.public else flow.from_caller
    for i, rule in summary.reaches.items():
        if i < len(args) and reaches(ctx, args[i]):
            yield _finding(ctx, rule, call, flow, f"a sink inside `{helper}()`", args[i])
            return
    for j, i in summary.calls:
        if max(i, j) < len(args) and reaches(ctx, args[i]):
            rule = _resolved_sink(ctx, args[j], module_names)
            if rule:
                what = f"`{ast.unparse(args[j])}` called by `{helper}()`"
                yield _finding(ctx, rule, call, flow, what, args[i])
                return


# --- XML ------------------------------------------------------------------------------------


def _xml_names(ctx: PyContext) -> set[str]:
    """Names bound to parsed XML documents or elements (`tree = etree.parse(...)`,
    `root = tree.getroot()`), so `.find(expr)` on them is an XPath query, not `str.find`."""
    pairs = [
        (t.id, n.value)
        for n in ast.walk(ctx.tree)
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    ]
    return names_reached(pairs, lambda value, names: _is_xml_value(ctx, value, names))


def _is_xml_value(ctx: PyContext, node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    if not isinstance(node, ast.Call):
        return False
    if (ctx.qualname(node.func) or "").startswith(_XML_MODULES):
        return True
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ("getroot", "getroottree", "find", "parse")
        and _is_xml_value(ctx, func.value, names)
    )


def _is_xpath(ctx: PyContext, call: ast.Call, xml_names: set[str]) -> bool:
    func = call.func
    if not isinstance(func, ast.Attribute):
        return (ctx.qualname(func) or "") == "lxml.etree.XPath"
    if func.attr == "xpath" or (ctx.qualname(func) or "") == "lxml.etree.XPath":
        return True
    return func.attr in _XPATH_METHODS and _is_xml_value(ctx, func.value, xml_names)


def _unsafe_lxml_parser(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    if (ctx.qualname(call.func) or "") != "lxml.etree.XMLParser":
        return
    risky = [
        f"{kw.arg}={ast.unparse(kw.value)}"
        for kw in call.keywords
        if (
            (kw.arg in ("resolve_entities", "load_dtd", "dtd_validation", "huge_tree"))
            and is_const(kw.value, True)
        )
        or (kw.arg == "no_network" and is_const(kw.value, False))
    ]
    if risky:
        yield ctx.finding(
            "sec.xxe",
            call,
            confidence=0.7,
            extra=f"`XMLParser({', '.join(risky)})` lets a document pull in external entities.",
        )


def constant_xml_lines(ctx: PyContext) -> set[int]:
    """Lines where an XML parse reads a string constant of this module (bandit's B313-B320
    flag those too; a document we wrote ourselves is not an XXE vector)."""
    consts = {name for name, value in _module_names(ctx).items() if is_str_const(value)}
    lines: set[int] = set()
    for call in (n for n in ast.walk(ctx.tree) if isinstance(n, ast.Call)):
        name = ctx.qualname(call.func) or ""
        if not name.startswith(("xml.", "lxml.")) or not call.args:
            continue
        arg = call.args[0]
        if isinstance(arg, ast.Call) and callee_name(ctx, arg) == "encode":
            arg = arg.func.value  # type: ignore[attr-defined]
        if is_str_const(arg) or (isinstance(arg, ast.Name) and arg.id in consts):
            lines.add(call.lineno)
    return lines


def drop_constant_xml(ctx: PyContext, found: list[RawFinding]) -> list[RawFinding]:
    if not any(f.rule in _BANDIT_XML for f in found):
        return found
    lines = constant_xml_lines(ctx)
    return [f for f in found if not (f.rule in _BANDIT_XML and f.line_start in lines)]


# --- SQL from a module-level template -------------------------------------------------------


def _sql_template(
    ctx: PyContext, call: ast.Call, module_names: dict[str, ast.AST]
) -> Iterator[RawFinding]:
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr in _SQL_METHODS and call.args):
        return
    arg = call.args[0]
    built = _template_use(arg, module_names, ctx)
    if built is None and isinstance(arg, ast.Name):
        scope = ctx.enclosing_function(call)
        for node in ast.walk(scope):
            for name, value in _assigned(node):
                if name == arg.id and getattr(node, "lineno", 0) <= call.lineno:
                    built = _template_use(value, module_names, ctx) or built
    if built:
        yield ctx.finding(
            "sec.sql",
            call,
            confidence=0.75,
            extra=f"The query is the template `{built}` formatted with runtime values.",
        )


def _assigned(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name):
                yield target.id, node.value


def _template_use(node: ast.AST, module_names: dict[str, ast.AST], ctx: PyContext) -> str | None:
    """`TEMPLATE.format(x)` / `TEMPLATE % x` where TEMPLATE is module- or class-level SQL text
    and some value is not a constant; returns the template's name."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr != "format":
            return None
        template, values = node.func.value, [*node.args, *(k.value for k in node.keywords)]
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        template, values = node.left, [node.right]
    else:
        return None
    text = _constant_text(template, module_names, ctx)
    if text is None or not _SQL_TEXT.match(text):
        return None
    if all(isinstance(v, ast.Constant) for v in values):
        return None
    return ast.unparse(template)


def _constant_text(node: ast.AST, module_names: dict[str, ast.AST], ctx: PyContext) -> str | None:
    if isinstance(node, ast.Name):
        value = module_names.get(node.id)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        value = _class_constant(ctx, node.attr) if node.value.id in ("self", "cls") else None
    else:
        return None
    return str(value.value) if isinstance(value, ast.Constant) and is_str_const(value) else None


def _class_constant(ctx: PyContext, attr: str) -> ast.AST | None:
    for cls in (n for n in ast.walk(ctx.tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == attr for t in stmt.targets
            ):
                return stmt.value
    return None


# --- protections switched off by a keyword --------------------------------------------------

_APP_CLASSES = ("Application", "Flask", "FastAPI", "Starlette", "Quart", "Sanic")
_COOKIE_FLAGS = {"httponly": False, "secure": False}
_COOKIE_SETTINGS = ("SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_SAMESITE")


def _switches(ctx: PyContext, call: ast.Call) -> Iterator[RawFinding]:
    """`web.Application(debug=True)`, `aiohttp_jinja2.setup(..., autoescape=False)`,
    `set_cookie(..., httponly=False)` / `RedisStorage(..., secure=False)`."""
    name = ctx.qualname(call.func) or ""
    last = name.rsplit(".", 1)[-1]
    if last in _APP_CLASSES and passes(call, "debug", True):
        yield ctx.finding(
            "sec.debug", call, confidence=0.75, extra=f"`{last}(debug=True)` in code."
        )
    if (
        "jinja" in name.lower()
        and name != "jinja2.Environment"  # bandit B701 reports that one
        and passes(call, "autoescape", False)
    ):
        yield ctx.finding(
            "sec.xss",
            call,
            confidence=0.75,
            extra=f"`{last}(autoescape=False)` renders every template variable unescaped.",
        )
    if "cookie" in last.lower() or "session" in last.lower() or last.endswith("Storage"):
        off = [
            kw.arg
            for kw in call.keywords
            if kw.arg in _COOKIE_FLAGS and is_const(kw.value, _COOKIE_FLAGS[kw.arg])
        ]
        if off:
            yield ctx.finding(
                "sec.cookie_flags",
                call,
                confidence=0.7,
                extra=f"`{last}({', '.join(f'{k}=False' for k in off)})`.",
            )


def _cookie_settings(ctx: PyContext, node: ast.Assign) -> Iterator[RawFinding]:
    for target in node.targets:
        if (
            isinstance(target, ast.Name)
            and target.id in _COOKIE_SETTINGS[:2]
            and is_const(node.value, False)
        ):
            yield ctx.finding(
                "sec.cookie_flags", node, confidence=0.7, extra=f"`{target.id} = False`."
            )
