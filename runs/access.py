"""Who may see or do what. Every view and consumer calls one of these on its first line."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from runs.models import Run


def get_run_for_user(user: Any, run_id: int) -> Run:
    """The run if ``user`` may see it; 404 otherwise (never reveal that a hidden run exists)."""
    try:
        return Run.objects.visible_to(user).select_related("launched_by").get(pk=run_id)
    except Run.DoesNotExist:
        raise Http404("No such run") from None


def require_perm(user: Any, perm: str) -> None:
    if not user.has_perm(perm):
        raise PermissionDenied(f"You need the {perm.split('.')[-1].replace('_', ' ')} permission")
