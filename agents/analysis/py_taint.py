"""Light data flow inside one module, for the flow rules in `py_flows.py` and `py_http.py` (the
framework rules' lighter taint in `py_framework.py` reads the same sources and calls).

Two kinds of untrusted value are followed through local assignments:
- request data: `request.GET/args/form/json/...`, aiohttp's `match_info`, and in an
  `http.server` handler `self.path`, `self.headers`, `self.rfile`;
- a caller's value: the parameters of a public function (no leading underscore). Whoever calls
  `read_report(name)` may pass anything, so a parameter reaching `open()` is a path-traversal
  risk unless the function checks it. These are reported at low severity and confidence: the
  caller may well validate.

The flow is intra-procedural and ignores order and branches (a name tainted anywhere in the
function is tainted everywhere), which is cheap and errs towards reporting. Private helpers get a
summary instead ("parameter 1 reaches urlopen", "parameter 0 is called with parameter 1"), so a
public function passing its argument to `_fetch(url)` is reported at the call.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from agents.analysis.py_context import FUNC_NODES, PyContext

REQUEST_NAMES = frozenset({"request", "req"})
REQUEST_ATTRS = frozenset(
    {
        "GET",
        "POST",
        "args",
        "form",
        "json",
        "values",
        "files",
        "data",
        "match_info",
        "query",
        "query_params",
        "rel_url",
        "cookies",
        "COOKIES",
        "headers",
        "get_json",
        "body",
    }
)
# Attributes of an `http.server` request handler that hold what the client sent.
HANDLER_ATTRS = frozenset({"path", "headers", "rfile", "requestline"})
# Calls whose result is safe whatever went in: they strip paths, escape, or convert to numbers.
SANITIZERS = frozenset(
    {
        "secure_filename",
        "basename",
        "safe_join",
        "url_for",
        "reverse",
        "int",
        "float",
        "bool",
        "len",
        "escape",
        "quoteattr",
        "clean",
        "literal_eval",
    }
)
# Calls that hand their input on (accessors, string and path builders, parsers of text).
PASS_THROUGH = frozenset(
    {
        "get",
        "getlist",
        "get_json",
        "pop",
        "str",
        "format",
        "join",
        "urljoin",
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "replace",
        "decode",
        "encode",
        "Path",
        "unquote",
        "unquote_plus",
        "quote",
        "dict",
        "list",
        "tuple",
        "finditer",
        "findall",
        "search",
        "match",
        "group",
        "groups",
        "split",
        "rsplit",
        "partition",
        "abspath",
        "normpath",
        "expanduser",
        "BytesIO",
        "StringIO",
        "sub",
        "urlparse",
        "urlsplit",
        "parse_qs",
        "parse_qsl",
        "b64decode",
        "items",
        "values",
    }
)
# Parameters whose name says the function takes a path or URL: choosing it is the caller's job
# (`read_header(path)` is an API for reading a given file), so a file or URL sink reached by
# them is not reported; other parameters (`name`, `data`, `user_input`) reaching one mean the
# function turns data into a path or address, which is where traversal and SSRF happen.
_DECLARED_LOCATIONS = re.compile(
    r"^(paths?|.*path|.*file|.*file_?name|fname|.*dir|dirname|directory|dest|src|"
    r"url|uri|.*_url|endpoint|base|root)$"
)
# Code run by the operator (Django management commands, migrations): a path argument there is
# the operator's choice, not an attacker's.
_OPERATOR_CODE = ("/management/commands/", "/migrations/")
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def callee_name(ctx: PyContext, call: ast.Call) -> str:
    """Last segment of what is called: `re.sub` -> `sub`, `params.get` -> `get`."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else (ctx.qualname(func) or "")
    return name.rsplit(".", 1)[-1]


def is_handler_class(node: ast.AST | None) -> bool:
    """A class deriving from an `http.server`/`socketserver` request handler."""
    if not isinstance(node, ast.ClassDef):
        return False
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if name.endswith("RequestHandler"):
            return True
    return False


def is_request_source(node: ast.AST, handler: bool = False) -> bool:
    """`request.GET`, `self.request.POST`, `req.match_info`; `self.path` in a handler; in a
    GraphQL resolver the request its context carries (`info.context.GET` in graphene-django,
    `info.context["request"].query_params` in ariadne/strawberry)."""
    if not isinstance(node, ast.Attribute):
        return False
    base = node.value
    if handler and node.attr in HANDLER_ATTRS and isinstance(base, ast.Name):
        return base.id == "self"
    if node.attr not in REQUEST_ATTRS:
        return False
    if isinstance(base, ast.Attribute) and base.attr in ("request", "context"):
        return True
    if isinstance(base, ast.Subscript) and isinstance(base.slice, ast.Constant):
        return base.slice.value == "request"
    return isinstance(base, ast.Name) and base.id in REQUEST_NAMES


# Decorators that register a GraphQL resolver: strawberry's `@strawberry.field` /
# `@strawberry.mutation`, ariadne's `@query.field("name")`, `@mutation.field(...)`.
_RESOLVER_DECORATORS = frozenset({"field", "mutation", "subscription", "resolver", "resolve"})
_RESOLVER_NAME = re.compile(r"^(resolve|mutate)(_|$)|^mutate_and_get_payload$")


def graphql_arguments(ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """The parameters of a GraphQL resolver that hold the query's arguments (request data):
    those after `info` in graphene (`resolve_x(root, info, id)`, `mutate(root, info, **kw)`),
    strawberry (`@strawberry.field def x(self, info, id)`, `info` optional) and ariadne
    (`@query.field("x") def resolve_x(obj, info, id)`). Empty for any other function."""
    args = func.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    decorated = any(
        (ctx.qualname(d.func if isinstance(d, ast.Call) else d) or "").rsplit(".", 1)[-1]
        in _RESOLVER_DECORATORS
        for d in func.decorator_list
    )
    strawberry = decorated and any(
        (ctx.qualname(d.func if isinstance(d, ast.Call) else d) or "").startswith("strawberry")
        for d in func.decorator_list
    )
    if "info" in names and (decorated or _RESOLVER_NAME.match(func.name)):
        after = names[names.index("info") + 1 :]
    elif strawberry:
        after = [n for n in names if n not in ("self", "cls", "root")]
    else:
        return set()
    after += [a.arg for a in args.kwonlyargs]
    if args.kwarg is not None:
        after.append(args.kwarg.arg)
    return set(after)


@dataclass
class Flow:
    """Tainted names of one top-level function (or method)."""

    func: ast.FunctionDef | ast.AsyncFunctionDef
    handler: bool
    request: set[str] = field(default_factory=set)
    anything: set[str] = field(default_factory=set)  # request data or a parameter's value
    params: list[str] = field(default_factory=list)
    reads_request: bool = False  # any request source in the function at all

    def from_request(self, ctx: PyContext, node: ast.AST) -> bool:
        return tainted(ctx, node, self.request, self.handler)

    def from_caller(self, ctx: PyContext, node: ast.AST) -> bool:
        return self.from_request(ctx, node) or tainted(
            ctx, node, self.anything, self.handler, attrs=False
        )


def tainted(
    ctx: PyContext, node: ast.AST, names: set[str], handler: bool = False, attrs: bool = True
) -> bool:
    """Does `node` carry a value from `names` or from the request? With `attrs=False` (a
    caller's value) an attribute of a tainted object is not tainted: `job.path` is a field the
    object holds, not text the caller chose."""
    if is_request_source(node, handler) or (isinstance(node, ast.Name) and node.id in names):
        return True
    if isinstance(node, ast.Call):
        callee = callee_name(ctx, node)
        if callee in SANITIZERS or callee not in PASS_THROUGH:
            return False
        # `re.sub(pattern, "", text)` only removes characters: treated as a filter.
        if callee == "sub" and len(node.args) >= 2 and _is_empty_str(node.args[1]):
            return False
        if is_request_source(node.func, handler):
            return True
        parts = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(node.func, ast.Attribute):
            parts.append(node.func.value)  # the receiver of `text.strip()`
        return any(tainted(ctx, p, names, handler, attrs) for p in parts)
    if isinstance(node, _COMPREHENSIONS):
        return any(tainted(ctx, g.iter, names, handler, attrs) for g in node.generators) or any(
            tainted(ctx, part, names, handler, attrs)
            for part in ((node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,))
        )
    if isinstance(node, ast.Attribute) and not attrs:
        return False
    return any(tainted(ctx, c, names, handler, attrs) for c in ast.iter_child_nodes(node))


def _is_empty_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in ("", b"")


def _pairs(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(name, value) for every local binding in `node`: `a = v`, `a, b = x, y` pairwise,
    `a, b = v` both from v, `a += v`, `for a in v`."""
    targets: list[ast.AST] = []
    value: ast.AST | None = None
    if isinstance(node, ast.Assign):
        targets, value = list(node.targets), node.value
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
        targets, value = [node.target], node.value
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        targets, value = [node.target], node.iter
    if value is None:
        return
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id, value
        elif isinstance(target, (ast.Tuple, ast.List)):
            same = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
            for i, elt in enumerate(target.elts):
                if isinstance(elt, ast.Name):
                    yield elt.id, value.elts[i] if same else value  # type: ignore[attr-defined]


def bindings(func: ast.AST) -> list[tuple[str, ast.AST]]:
    """(name, value) of every local binding inside `func` (see `_pairs`)."""
    return [pair for node in ast.walk(func) for pair in _pairs(node)]


def names_reached(
    bindings: Sequence[tuple[str, ast.AST]],
    reaches: Callable[[ast.AST, set[str]], bool],
    seeds: Iterable[str] = (),
) -> set[str]:
    """`seeds` and every name bound (`bindings`: name, value) to a value that `reaches(value,
    names)` accepts, `names` being those found so far: passes repeat until none is added, so a
    name is found whatever the order of the bindings that lead to it."""
    names = set(seeds)
    changed = True
    while changed:
        changed = False
        for name, value in bindings:
            if name not in names and reaches(value, names):
                names.add(name)
                changed = True
    return names


def tainted_names(
    ctx: PyContext, func: ast.AST, seeds: set[str], handler: bool = False, attrs: bool = True
) -> set[str]:
    """Names that receive request data or a value of `seeds`, directly or through others."""
    pairs = [pair for node in ast.walk(func) for pair in _pairs(node)]
    return names_reached(
        pairs, lambda value, names: tainted(ctx, value, names, handler, attrs), seeds
    )


def mentioning_names(func: ast.AST, seed: str) -> set[str]:
    """Names whose assigned value mentions `seed` in any way (`c = make(seed)` included): the
    objects a parameter builds, used for "the caller chose the client" summaries."""
    pairs = [pair for node in ast.walk(func) for pair in _pairs(node)]
    return names_reached(
        pairs,
        lambda value, names: any(
            isinstance(n, ast.Name) and n.id in names for n in ast.walk(value)
        ),
        {seed},
    )


def param_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = func.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]


def _caller_params(func: ast.FunctionDef | ast.AsyncFunctionDef, path: str) -> list[str]:
    """Parameters a caller controls: of public functions, outside tests; not self/cls, and not
    the request object itself (its fields are request sources already)."""
    name = func.name
    if name.startswith("_") or "test" in path.rsplit("/", 1)[-1].lower():
        return []
    if any(part in f"/{path}" for part in _OPERATOR_CODE):
        return []  # command-line code: its arguments come from the operator, not a client
    args = func.args
    numeric = {
        a.arg
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)
        if isinstance(a.annotation, ast.Name) and a.annotation.id in ("int", "float", "bool")
    }
    return [
        p
        for p in param_names(func)
        if p not in ("self", "cls", "request", "req")
        and p not in numeric  # a number cannot carry `../` or a host name
        and not _DECLARED_LOCATIONS.match(p)
    ]


def top_functions(ctx: PyContext) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Module-level functions and methods (nested functions are part of their parent's flow),
    with whether the function is a method of an `http.server` handler."""
    for node in ast.walk(ctx.tree):
        if isinstance(node, FUNC_NODES) and ctx.enclosing_function(node) is ctx.tree:
            yield node, is_handler_class(ctx.parents.get(node))


def flows(ctx: PyContext) -> list[Flow]:
    out = []
    for func, handler in top_functions(ctx):
        graphql = graphql_arguments(ctx, func)
        params = [p for p in _caller_params(func, ctx.path) if p not in graphql]
        reads = bool(graphql) or any(is_request_source(n, handler) for n in ast.walk(func))
        # Without a request source no name can carry request data: skip the fixpoint.
        request = tainted_names(ctx, func, graphql, handler) if reads else set()
        out.append(
            Flow(
                func=func,
                handler=handler,
                request=request,
                anything=tainted_names(ctx, func, request | set(params), handler, attrs=False)
                if (reads or params)
                else set(),
                params=params,
                reads_request=reads,
            )
        )
    return out
