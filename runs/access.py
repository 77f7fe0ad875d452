"""Who may see or do what. Every view and consumer calls one of these on its first line."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from runs.models import Run
from runs.roles import roles_granting


class AuthenticatedHttpRequest(HttpRequest):
    """The request every view but the health probe receives: ``LoginRequiredMiddleware`` lets
    no anonymous request through, and ``HtmxMiddleware`` says whether htmx sent it (the one way
    a view asks: ``request.htmx``)."""

    user: User
    htmx: HtmxDetails


class RunNotFound(Http404):
    """No such run, or one the user may not see (the same answer: a hidden run is never
    revealed). An ordinary situation of the product (an old link, a deleted run), so it gets the
    product's 404 page even under DEBUG (``runs.views.middleware.RunNotFoundPage``)."""


class MissingPermission(PermissionDenied):
    """A refusal that knows the permission it lacked, so the 403 page can name the role group
    that grants it (``roles``) instead of a list of every group."""

    def __init__(self, perm: str) -> None:
        self.perm = perm
        self.roles = roles_granting(perm)
        super().__init__(f"You need the {perm.split('.')[-1].replace('_', ' ')} permission")


def get_run_for_user(user: User | AnonymousUser, run_id: int) -> Run:
    """The run if ``user`` may see it; 404 otherwise (never reveal that a hidden run exists)."""
    try:
        return Run.objects.visible_to(user).select_related("launched_by").get(pk=run_id)
    except Run.DoesNotExist:
        raise RunNotFound("No such run") from None


def require_staff(user: User | AnonymousUser) -> None:
    """Administrators only (staff accounts: those who may use the admin), e.g. webhooks, whose
    URLs and secrets reach outside the dashboard."""
    if not (user.is_authenticated and user.is_staff):
        raise PermissionDenied("This page is for administrators (staff accounts).")


def require_perm(user: User | AnonymousUser, perm: str) -> None:
    if not user.has_perm(perm):
        raise MissingPermission(perm)
