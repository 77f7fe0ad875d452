"""Every error of the API in one shape: RFC 9457 problem details (``application/problem+json``).

``{"type", "title", "status", "detail", "instance"}`` plus, where they apply, ``code`` (the
problem's short name, what a client switches on), ``field`` (the launch form's field a launch
refusal is about), ``errors`` (each invalid input) and ``roles`` (the role groups that grant a
missing permission). A refusal's ``detail`` is the action's own message: the words the form or
the page shows for the same refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from runs.access import MissingPermission
from runs.actions import DecisionRefused, LaunchError, RetryRefused
from runs.actions.report import ReaggregateRefused

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
# Problem types: identifiers (RFC 4151 tag URIs), not links. ``about:blank`` is a plain HTTP
# status with nothing more to say (RFC 9457 section 4.2.1).
TYPE_PREFIX = "tag:agent-harness,2026:problem:"


class Problem(Exception):
    """An API error: raise it anywhere under the API, it becomes a problem response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str = "",
        title: str = "",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(request: HttpRequest, problem: Problem) -> HttpResponse:
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{problem.code}" if problem.code else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.path,
    }
    if problem.code:
        body["code"] = problem.code
    body.update(problem.extensions)
    response = HttpResponse(json.dumps(body), status=problem.status, content_type=CONTENT_TYPE)
    for name, value in problem.headers.items():
        response[name] = value
    return response


def _refusal(status: int, code: str, title: str) -> Callable[[HttpRequest, Any], HttpResponse]:
    """An action's refusal: its own message as the detail (what the page shows for it)."""

    def handle(request: HttpRequest, exc: Exception) -> HttpResponse:
        problem = Problem(status, str(exc), code=code, title=title)
        if isinstance(exc, LaunchError):
            problem.extensions["field"] = exc.field
        return problem_response(request, problem)

    return handle


def _validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
    where = ".".join(str(part) for part in first["loc"][1:]) or "the request"
    detail = f"{where}: {first['msg']}"
    problem = Problem(422, detail, code="invalid-request", title="Invalid request", errors=errors)
    return problem_response(request, problem)


def _not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
    # The message of a RunNotFound ("No such run") or get_object_or_404's; never more.
    detail = str(exc) or "Not found."
    return problem_response(request, Problem(404, detail, code="not-found"))


def _forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
    if isinstance(exc, MissingPermission):
        detail = f"{exc}. The role groups that have it: {', '.join(exc.roles) or 'none'}."
        problem = Problem(403, detail, code="missing-permission", roles=exc.roles)
    else:
        problem = Problem(403, str(exc) or "Forbidden.", code="forbidden")
    return problem_response(request, problem)


def _unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
    detail = (
        "Authentication required: send Authorization: Bearer <token> (an API token), "
        "or sign in for the browser's session."
    )
    headers = {"WWW-Authenticate": 'Bearer realm="api"'}
    return problem_response(request, Problem(401, detail, code="unauthenticated", headers=headers))


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = "csrf-failed" if "CSRF" in exc.message else ""
    detail = exc.message
    if code:
        detail = "CSRF check failed: a request signed in by session must carry the CSRF token."
    return problem_response(request, Problem(exc.status_code, detail, code=code))


def _problem(request: HttpRequest, exc: Problem) -> HttpResponse:
    return problem_response(request, exc)


def _crash(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API error on %s %s", request.method, request.path)
    problem = Problem(500, "Something went wrong on the server; it has been logged.")
    return problem_response(request, problem)


Handler = Callable[[HttpRequest, Any], HttpResponse]

# The problem shape as the OpenAPI schema shows it, and the errors every operation may answer.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "examples": [f"{TYPE_PREFIX}launch-refused"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "The dashboard's own message."},
        "instance": {"type": "string"},
        "code": {"type": "string", "description": "What a client switches on."},
        "field": {"type": ["string", "null"], "description": "The launch form's field."},
        "errors": {"type": "array", "items": {"type": "object"}},
        "roles": {"type": "array", "items": {"type": "string"}},
        "scope": {"type": "string"},
    },
}
ERRORS = {
    "400": "A bad cursor, limit or parameter.",
    "401": "No token or session, or a token unknown, revoked or expired.",
    "403": "The token lacks the scope, the user the permission, or the session the CSRF token.",
    "404": "No such record, or one you may not see.",
    "409": "Refused by the state of the run or gate: the detail says why.",
    "422": "Invalid input, or a launch refused: the detail is the launch form's message.",
    "429": "This token's rate limit; see Retry-After.",
}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the API's OpenAPI document) with the problem shape and the error answers on
    every operation: errors are raised, so ninja cannot see them on its own."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = SCHEMA
    ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(status, {"description": description, "content": ref})
    return schema


def install(api: NinjaAPI) -> None:
    """Every error of ``api`` as a problem; the most specific class wins (ninja walks the MRO)."""

    def add(exc_class: type[Exception], handler: Handler) -> None:
        api.add_exception_handler(exc_class, handler)

    add(Exception, _crash)
    add(Problem, _problem)
    add(HttpError, _http_error)
    add(AuthenticationError, _unauthenticated)
    add(ValidationError, _validation)
    add(Http404, _not_found)
    add(PermissionDenied, _forbidden)
    # A launch refused for what was asked (422); the other refusals are about the state the
    # run or the gate is in (409: already decided, nothing to retry, …).
    add(LaunchError, _refusal(422, "launch-refused", "Launch refused"))
    add(DecisionRefused, _refusal(409, "decision-refused", "Decision refused"))
    add(RetryRefused, _refusal(409, "retry-refused", "Retry refused"))
    add(ReaggregateRefused, _refusal(409, "reaggregate-refused", "Re-aggregation refused"))
