"""Access-control checks a static pass can make honestly, each reported as a heuristic.

Whether a user may act on an object is business logic the code alone rarely settles, so these
rules only report the shapes that are wrong in almost every app, at low-to-medium confidence,
and say so in the finding:
- IDOR (CWE-639): a view fetches one object by an id the client chose (a URL parameter or
  request data) and nothing in the view ties it to the user: no `owner=request.user` filter,
  no permission call, no 403.
- missing authentication (CWE-862): a view that changes state (writes to the database) has no
  login decorator, mixin or check, while other views of the same module have one: the module
  shows the project protects views and this one was left out.
- missing authorization (CWE-285): DRF views with `AllowAny` that accept writes, and views
  whose route or name says "admin" with no role check.
Views are Django/DRF function views (a `request` parameter or `@api_view`), Flask/FastAPI
routes, and the handler methods of class-based views.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from agents.analysis.finding import RawFinding
from agents.analysis.py_context import FUNC_NODES, PyContext, keyword
from agents.analysis.py_taint import is_request_source, tainted, tainted_names

_ROUTES = frozenset({"route", "get", "post", "put", "patch", "delete", "api_view", "view_config"})
_WRITE_ROUTES = frozenset({"post", "put", "patch", "delete"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CBV_BASES = re.compile(r"(View|ViewSet|Resource|Handler|Endpoint)$")
_CBV_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "create", "update", "partial_update", "destroy"}
)
_CBV_WRITES = frozenset({"post", "put", "patch", "delete", "create", "update", "destroy"})
# Decorators and mixins that authenticate the caller (any name containing these words).
_AUTH_WORDS = re.compile(
    r"login|auth|permission|jwt|token_required|admin_required|staff|superuser|"
    r"user_passes_test|roles?_required|requires?_|protected|secured",
    re.I,
)
_ROLE_WORDS = re.compile(r"admin|staff|superuser|permission|role|perm", re.I)
# What a view mentions when it checks the user itself.
_USER_TEXT = re.compile(
    r"request\.user|current_user|g\.user|get_jwt_identity|is_authenticated|has_perm|"
    r"check_object_permissions|has_object_permission|PermissionDenied|HttpResponseForbidden|"
    r"abort\(\s*40[13]|status\s*=\s*40[13]|\b40[13]\b|session\[.user|session\.get\(.user|"
    r"owner|get_current_user|identity|request\.auth\b"
)
_ROLE_TEXT = re.compile(
    r"is_admin|is_staff|is_superuser|has_perm|role|permission|PermissionDenied|"
    r"HttpResponseForbidden|abort\(\s*403|\b403\b"
)
_OWNER_KEYS = re.compile(r"^(user|owner|author|created_by|account|tenant|customer)(_id)?$|_user$")
_ID_KEY = re.compile(r"^(id|pk|uuid|slug)$|_(id|pk|uuid)$|^(id|pk)__")
# Views every visitor must reach: signing in or up, resetting a password, public pages.
_PUBLIC_VIEW = re.compile(
    r"log_?in|sign_?(in|up)|register|log_?out|password|reset|forgot|token|health|index|home|"
    r"contact|webhook|callback|verify|activate|confirm|public|static|csrf",
    re.I,
)
_DB_WRITES = frozenset(
    {"save", "delete", "create", "update", "bulk_create", "get_or_create", "update_or_create"}
)
_WRITE_SQL = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.I)
_FETCH_METHODS = frozenset({"get", "get_or_404", "first_or_404", "filter", "filter_by"})
_HEURISTIC = "Heuristic: the code shows no check; confirm it is not done elsewhere."


def check_access(ctx: PyContext) -> Iterator[RawFinding]:
    """Yield the access-control findings of one parsed module."""
    views = list(_views(ctx))
    guarded = [v for v in views if _authenticated(ctx, v)]
    for view in views:
        yield from _idor(ctx, view)
        admin = list(_admin_open(ctx, view))
        yield from admin
        if not admin and guarded and view not in guarded and _writes(ctx, view):
            name = view.name
            if not _PUBLIC_VIEW.search(name) and not _PUBLIC_VIEW.search(_class_name(ctx, view)):
                yield ctx.finding(
                    "sec.missing_auth",
                    view,
                    end_node=view.args,
                    confidence=0.45,
                    extra=f"`{name}` changes data but has no login check, while "
                    f"{len(guarded)} other view(s) of this module have one. {_HEURISTIC}",
                )
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Compare):
            yield from _client_role(ctx, node)
        if isinstance(node, ast.ClassDef):
            yield from _drf_allow_any(ctx, node)
        elif isinstance(node, FUNC_NODES):
            yield from _drf_function_allow_any(ctx, node)


# --- which functions are views --------------------------------------------------------------


def _deco_name(ctx: PyContext, deco: ast.AST) -> str:
    target = deco.func if isinstance(deco, ast.Call) else deco
    return (ctx.qualname(target) or "").rsplit(".", 1)[-1]


def _class_name(ctx: PyContext, func: ast.AST) -> str:
    parent = ctx.parents.get(func)
    return parent.name if isinstance(parent, ast.ClassDef) else ""


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [
        b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
        for b in cls.bases
        if isinstance(b, (ast.Attribute, ast.Name))
    ]


def _views(ctx: PyContext) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(ctx.tree):
        if not isinstance(node, FUNC_NODES):
            continue
        parent = ctx.parents.get(node)
        if isinstance(parent, ast.ClassDef):
            if node.name in _CBV_METHODS and any(_CBV_BASES.search(b) for b in _base_names(parent)):
                yield node
        elif parent is ctx.tree and (
            any(_deco_name(ctx, d) in _ROUTES for d in node.decorator_list)
            or (node.args.args and node.args.args[0].arg in ("request", "req"))
        ):
            yield node


def _authenticated(ctx: PyContext, view: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A login/permission decorator, an authenticating mixin or permission class on the class,
    or a check of the user in the body."""
    decos = list(view.decorator_list)
    parent = ctx.parents.get(view)
    if isinstance(parent, ast.ClassDef):
        if any(_AUTH_WORDS.search(b) for b in _base_names(parent)):
            return True
        decos += parent.decorator_list
        if _permission_classes(parent) - {"AllowAny"}:
            return True
    if any(
        _AUTH_WORDS.search(_deco_name(ctx, d))
        or (
            isinstance(d, ast.Call)
            and _deco_name(ctx, d) not in _ROUTES
            and _AUTH_WORDS.search(ast.unparse(d.args[0]) if d.args else "")
        )
        for d in decos
    ):
        return True
    return bool(_USER_TEXT.search(_body_text(ctx, view)))


def _body_text(ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The function's statements as source text (not its decorators: a route says nothing of
    checks). Sliced from the file's lines: far cheaper than unparsing the body."""
    start = func.body[0].lineno - 1
    return "\n".join(ctx.lines[start : func.end_lineno or start + 1])


def _route_methods(ctx: PyContext, view: ast.AST) -> set[str]:
    out: set[str] = set()
    for deco in getattr(view, "decorator_list", []):
        last = _deco_name(ctx, deco)
        if last in _WRITE_ROUTES:
            out.add(last.upper())
        if isinstance(deco, ast.Call):
            methods = keyword(deco, "methods")
            values = (
                methods.value
                if methods
                else (deco.args[0] if last == "api_view" and deco.args else None)
            )
            if isinstance(values, (ast.List, ast.Tuple, ast.Set)):
                out |= {str(e.value).upper() for e in values.elts if isinstance(e, ast.Constant)}
    return out


def _writes(ctx: PyContext, view: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The view changes stored data: an ORM write, a session commit, or write SQL."""
    if _class_name(ctx, view) and view.name not in _CBV_WRITES:
        return False
    for node in ast.walk(view):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr = node.func.attr
        if attr in _DB_WRITES and not (attr == "update" and _is_dict_update(node)):
            return True
        if attr == "commit" or (attr.startswith("execute") and _is_write_sql(node)):
            return True
    return False


def _is_dict_update(call: ast.Call) -> bool:
    """`d.update({...})` / `session.update(x)` on a plain mapping, not a queryset."""
    func = call.func
    receiver = func.value if isinstance(func, ast.Attribute) else None
    return bool(call.args) and not isinstance(receiver, ast.Call)


def _is_write_sql(call: ast.Call) -> bool:
    texts = [
        str(c.value)
        for a in call.args[:1]
        for c in ast.walk(a)
        if isinstance(c, ast.Constant) and isinstance(c.value, str)
    ]
    return any(_WRITE_SQL.match(t) for t in texts)


# --- IDOR -----------------------------------------------------------------------------------


def _client_ids(ctx: PyContext, view: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names holding what the client chose: URL parameters of the view and request data."""
    params = {
        a.arg
        for a in (*view.args.args, *view.args.kwonlyargs)
        if a.arg not in ("self", "cls", "request", "req", "info")
    }
    return tainted_names(ctx, view, params)


def _fetch_id(ctx: PyContext, call: ast.Call, ids: set[str]) -> ast.AST | None:
    """The client-chosen id argument when `call` fetches one object by it, else None."""
    func = call.func
    name = ctx.qualname(func) or ""
    last = name.rsplit(".", 1)[-1]
    keys = {k.arg: k.value for k in call.keywords if k.arg}
    if any(_OWNER_KEYS.search(k) for k in keys) or len(keys) > 1:
        return None  # filtered by its owner or a parent object (`run=run, pk=…`)
    if last == "get_object_or_404" and call.args and not isinstance(call.args[0], ast.Name):
        return None  # a queryset the view built (`_visible(user)`), presumably scoped
    if last == "get_object_or_404" or (
        isinstance(func, ast.Attribute)
        and last in _FETCH_METHODS
        and isinstance(func.value, ast.Attribute)
        and func.value.attr in ("objects", "query")
    ):
        by_key = [v for k, v in keys.items() if _ID_KEY.search(k)]
        # Flask-SQLAlchemy `Model.query.get(id)` / `get_or_404(id)`: the key is positional.
        positional = call.args if last in ("get", "get_or_404") and "query" in name else []
        for value in (*by_key, *positional):
            if tainted(ctx, value, ids):
                return value
    # SQLAlchemy 2 `db.session.get(Model, id)`
    if (
        last == "get"
        and isinstance(func, ast.Attribute)
        and len(call.args) == 2
        and "session" in ast.unparse(func.value)
        and tainted(ctx, call.args[1], ids)
    ):
        return call.args[1]
    return None


def _idor(ctx: PyContext, view: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[RawFinding]:
    if _USER_TEXT.search(_body_text(ctx, view)) or _role_decorated(ctx, view):
        return
    ids = _client_ids(ctx, view)
    if not ids and not any(is_request_source(n) for n in ast.walk(view)):
        return
    for node in ast.walk(view):
        if isinstance(node, ast.Call) and _fetch_id(ctx, node, ids) is not None:
            yield ctx.finding(
                "sec.idor",
                node,
                confidence=0.4,
                extra=f"`{view.name}` loads an object by an id the client chose and never "
                f"compares it with the signed-in user. {_HEURISTIC}",
            )
            return  # one per view: the fix (scope the lookup to the user) is one change


def _role_decorated(ctx: PyContext, view: ast.AST) -> bool:
    decos = list(getattr(view, "decorator_list", []))
    parent = ctx.parents.get(view)
    if isinstance(parent, ast.ClassDef):
        decos += parent.decorator_list
        if any(_ROLE_WORDS.search(b) for b in _base_names(parent)):
            return True
        if _permission_classes(parent) - {"AllowAny", "IsAuthenticated"}:
            return True
    return any(
        _ROLE_WORDS.search(ast.unparse(d)) for d in decos if _deco_name(ctx, d) not in _ROUTES
    )


# --- admin actions and AllowAny -------------------------------------------------------------


def _route_text(view: ast.AST) -> str:
    return " ".join(
        str(a.value)
        for d in getattr(view, "decorator_list", [])
        if isinstance(d, ast.Call)
        for a in d.args[:1]
        if isinstance(a, ast.Constant)
    )


def _admin_open(
    ctx: PyContext, view: ast.FunctionDef | ast.AsyncFunctionDef
) -> Iterator[RawFinding]:
    """A view whose route or name says admin, reachable without any role check."""
    named = f"{_route_text(view)} {view.name} {_class_name(ctx, view)}"
    if not re.search(r"admin", named, re.I) or _role_decorated(ctx, view):
        return
    if _ROLE_TEXT.search(_body_text(ctx, view)):
        return
    yield ctx.finding(
        "sec.missing_authz",
        view,
        end_node=view.args,
        confidence=0.45,
        extra=f"`{view.name}` is an admin action, yet nothing checks that the caller is an "
        f"administrator. {_HEURISTIC}",
    )


def _permission_classes(cls: ast.ClassDef) -> set[str]:
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "permission_classes" for t in stmt.targets
        ):
            return _names_in(stmt.value)
    return set()


def _names_in(value: ast.AST) -> set[str]:
    return {
        n.attr if isinstance(n, ast.Attribute) else n.id
        for n in ast.walk(value)
        if isinstance(n, (ast.Name, ast.Attribute))
    }


_DRF_WRITE_BASES = re.compile(
    r"ModelViewSet|^ViewSet$|GenericViewSet|Create|Update|Destroy|ListCreate|APIView$"
)


def _drf_allow_any(ctx: PyContext, cls: ast.ClassDef) -> Iterator[RawFinding]:
    if "AllowAny" not in _permission_classes(cls) or _PUBLIC_VIEW.search(cls.name):
        return
    bases = _base_names(cls)
    methods = {f.name for f in cls.body if isinstance(f, FUNC_NODES)}
    if any(b.startswith("ReadOnly") for b in bases):
        return
    writes = any(re.search(r"ModelViewSet|Create|Update|Destroy", b) for b in bases) or (
        methods & _CBV_WRITES and any(_DRF_WRITE_BASES.search(b) for b in bases)
    )
    if writes:
        yield ctx.finding(
            "sec.missing_authz",
            cls,
            end_node=cls.bases[-1] if cls.bases else cls,
            confidence=0.55,
            extra=f"`{cls.name}` accepts writes with `permission_classes = [AllowAny]`: anyone, "
            f"signed in or not, may create, change or delete. {_HEURISTIC}",
        )


def _drf_function_allow_any(
    ctx: PyContext, func: ast.FunctionDef | ast.AsyncFunctionDef
) -> Iterator[RawFinding]:
    allow = any(
        _deco_name(ctx, d) == "permission_classes" and "AllowAny" in _names_in(d)
        for d in func.decorator_list
    )
    if allow and _route_methods(ctx, func) & _WRITE_METHODS and not _PUBLIC_VIEW.search(func.name):
        yield ctx.finding(
            "sec.missing_authz",
            func,
            end_node=func.args,
            confidence=0.55,
            extra=f"`{func.name}` accepts writes with `AllowAny`. {_HEURISTIC}",
        )


_ROLE_KEY = re.compile(r"admin|role|privilege|is_staff|superuser|access_level|user_?type", re.I)
_ROLE_VALUE = re.compile(r"^(admin|administrator|root|superuser|staff|moderator)$", re.I)


def _client_role(ctx: PyContext, node: ast.Compare) -> Iterator[RawFinding]:
    """`if request.COOKIES['role'] == 'admin'`: the client states its own role."""
    sides = [node.left, *node.comparators]
    from_client = [s for s in sides if any(is_request_source(n) for n in ast.walk(s))]
    if not from_client:
        return
    keys = [
        str(c.value)
        for s in from_client
        for c in ast.walk(s)
        if isinstance(c, ast.Constant) and isinstance(c.value, str)
    ]
    values = [str(s.value) for s in sides if isinstance(s, ast.Constant)]
    if any(_ROLE_KEY.search(k) for k in keys) or any(_ROLE_VALUE.match(v) for v in values):
        yield ctx.finding(
            "sec.missing_authz",
            node,
            confidence=0.6,
            extra="The role is read from what the client sends (a cookie, header or "
            "parameter): anyone can claim it. Decide roles from the server-side user. "
            + _HEURISTIC,
        )
