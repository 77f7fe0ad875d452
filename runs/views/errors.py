"""Error pages that need more than Django's defaults give their templates."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 403 page: what was missing and, when the refusal knows (``MissingPermission``), the
    group that grants it, since that is what the user must ask an administrator for."""
    roles = list(getattr(exception, "roles", None) or [])
    groups = " or ".join([", ".join(roles[:-1]), roles[-1]] if len(roles) > 1 else roles)
    context = {"exception": str(exception or ""), "groups": groups}
    return render(request, "403.html", context, status=403)
