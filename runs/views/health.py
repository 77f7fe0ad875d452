from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from runs.observability.health import health


@login_not_required  # probed by load balancers and compose healthchecks; reveals no run data
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Status for anyone; the details (database vendor, worker names, timings, error types)
    only for signed-in staff: they help an attacker map the deployment."""
    ok, body = health()
    if not (request.user.is_authenticated and request.user.is_staff):
        body = {
            "status": body["status"],
            **{part: {"ok": body[part]["ok"]} for part in ("database", "redis", "workers")},
        }
    return JsonResponse(body, status=200 if ok else 503)
