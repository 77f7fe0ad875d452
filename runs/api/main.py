"""The API's one ``NinjaAPI``: its routers, its auth (a token, or the session with CSRF), its
problem responses, its OpenAPI schema (/api/v1/openapi.json) and interactive docs
(/api/v1/docs, Swagger UI served from our own static files), and its URL patterns."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI, Router

from agents.playbooks import PLAYBOOKS
from runs.actions.launch_options import playbook_options
from runs.api import agents, approvals, reports, runs
from runs.api.auth import BearerToken, Session, granted, resolve_bearer
from runs.api.problems import Problem, document, install, problem_response
from runs.api.schemas import PlaybookOut, TargetOut
from runs.targets import available_targets


def _docs_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema for a signed-in session or any valid token; the docs page (an HTML page
    whose "Try it out" uses the session) sends an anonymous visitor to sign in."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated or resolve_bearer(request) is not None:
            return view(request, *args, **kwargs)
        if request.path.endswith("openapi.json"):
            return problem_response(
                request,
                Problem(
                    401, "Sign in, or send Authorization: Bearer <token>.", code="unauthenticated"
                ),
            )
        return redirect_to_login(request.get_full_path())

    return guarded


class HarnessAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        return document(super().get_openapi_schema(**kwargs))


api = HarnessAPI(
    title="Agent Harness API",
    version="1",
    description=(
        "Runs, agents, events, findings, reports and approvals of the Agent Harness. "
        "Authenticate with `Authorization: Bearer <token>` (a personal token from Settings → "
        "API tokens, or `manage.py create_api_token`); a token acts with its user's roles and "
        "never beyond its scopes (read, launch, review, metrics). Errors are RFC 9457 problem "
        "details (`application/problem+json`). Lists are cursor-paginated: pass `next_cursor` "
        "back as `cursor`."
    ),
    urls_namespace="api",
    auth=[BearerToken(), Session()],
    docs_url="/docs",
    openapi_url="/openapi.json",
    docs_decorator=_docs_access,
)
install(api)

api.add_router("/runs", runs.router)
api.add_router("/runs", agents.router)
api.add_router("/runs", reports.router)
api.add_router("/approvals", approvals.router)

meta = Router(tags=["launch choices"])


@meta.get(
    "/targets/",
    response=list[TargetOut],
    url_name="targets",
    summary="Targets a launch may name (scope: read)",
)
def targets(request: HttpRequest) -> list[dict[str, str]]:
    """Directories and documents under the allowed target roots: a launch's ``target`` is one
    of these labels (or paths). Any other target is an upload."""
    granted(request, "read")
    return [{"label": label, "path": path} for path, label in available_targets()]


@meta.get(
    "/playbooks/",
    response=list[PlaybookOut],
    url_name="playbooks",
    summary="Playbooks and the options each takes (scope: read)",
)
def playbooks(request: HttpRequest) -> list[dict[str, Any]]:
    granted(request, "read")
    return [
        {"name": book.name, "title": book.title, "options": playbook_options(book)}
        for book in PLAYBOOKS.values()
    ]


api.add_router("", meta)


def urls() -> tuple[list[URLPattern | URLResolver], str, str]:
    """The API's URL patterns, each let past ``LoginRequiredMiddleware``: the API answers an
    anonymous request itself (401, a problem), it never redirects it to the login page."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = login_not_required(pattern.callback)
    return patterns, app_name, namespace
