"""``GET /metrics``: Prometheus text for staff sessions and API tokens with the ``metrics``
scope."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runs.api.auth import resolve_bearer
from runs.observability.metrics import registry


def token_may_read_metrics(request: HttpRequest) -> bool:
    """Whether the request's ``Authorization: Bearer`` token is a live token (not revoked, not
    expired, its user active) that holds the ``metrics`` scope."""
    caller = resolve_bearer(request)
    return caller is not None and "metrics" in caller.scopes


@login_not_required  # a scraper has no session: it is answered 401, never sent to a login page
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not (token_may_read_metrics(request) or (user.is_authenticated and user.is_staff)):
        if user.is_authenticated:
            return HttpResponse(
                "Metrics are for staff accounts and tokens with the metrics scope.\n",
                status=403,
                content_type="text/plain; charset=utf-8",
            )
        response = HttpResponse(
            "Sign in as staff, or send a token with the metrics scope.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
