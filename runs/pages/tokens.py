"""The API tokens page: a user's own tokens (never anyone else's), newest first, and what their
roles let a token do (a token never goes beyond its user's roles)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from runs.models import ApiToken

# The permission behind each write scope: a scope the user's roles cannot use grants nothing.
SCOPE_NEEDS = {"launch": "runs.launch_run", "review": "runs.decide_approval"}


def tokens_context(user: User) -> dict[str, Any]:
    tokens = list(ApiToken.objects.filter(user=user).order_by("-created_at", "-id"))
    idle = [scope for scope, perm in SCOPE_NEEDS.items() if not user.has_perm(perm)]
    return {
        "tokens": tokens,
        "idle_scopes": idle,
        "rate_per_minute": settings.HARNESS_API_RATE_PER_MINUTE,
        "max_days": settings.HARNESS_API_TOKEN_MAX_DAYS,
    }
