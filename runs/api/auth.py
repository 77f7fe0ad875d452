"""Who is calling the API, and with what scopes.

Two ways in, tried in this order:

- ``Authorization: Bearer hrn_…``: an API token (``runs.models.ApiToken``). It acts as its user,
  with that user's roles, and only within its scopes. A request with a token is exempt from
  CSRF (a browser never attaches the header by itself, and a cross-site page cannot set it
  without a CORS preflight this server never grants). A token present but unknown, revoked or
  expired is refused (401) at once: no fall-back to the session.
- The browser's session (the same sign-in as the pages): every scope, the user's roles, and
  Django's CSRF check on every unsafe method, exactly as for the pages' forms.

``resolve_bearer`` is the one token check: other endpoints that take tokens (the metrics)
call it too. Secrets are never logged: only a token's prefix is ever shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.security import SessionAuth
from ninja.security.http import HttpAuthBase

from runs.actions.tokens import TokenRefused, token_for_secret
from runs.api.problems import Problem
from runs.api.ratelimit import check_rate
from runs.models import ApiToken
from runs.models.token import SCOPES


@dataclass(frozen=True)
class Caller:
    """The user an API request acts as, the scopes it holds, and its token (None: session)."""

    user: User
    scopes: frozenset[str]
    token: ApiToken | None = None


def bearer_secret(request: HttpRequest) -> str | None:
    """The secret of an ``Authorization: Bearer`` header; None without one."""
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip()


def resolve_bearer(request: HttpRequest) -> Caller | None:
    """The caller behind the request's bearer token: (user, scopes, token), or None when there
    is no bearer token or it is unknown, revoked, expired or its user inactive. Notes the
    token's last use. No rate limit here: ``check_rate(caller.token)`` is the caller's choice."""
    secret = bearer_secret(request)
    if not secret:
        return None
    try:
        token = token_for_secret(secret)
    except TokenRefused:
        return None
    return Caller(token.user, frozenset(token.scopes), token)


def _token_refused(detail: str) -> Problem:
    return Problem(
        401,
        detail,
        code="invalid-token",
        headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'},
    )


class BearerToken(HttpAuthBase):
    """ninja's auth for ``Authorization: Bearer`` (its own ``HttpBearer`` logs an unexpected
    header's value under DEBUG, which could be a secret: not used)."""

    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> Caller | None:
        secret = bearer_secret(request)
        if secret is None:
            return None  # no token: the session may still sign the request
        try:
            token = token_for_secret(secret)
        except TokenRefused as exc:
            raise _token_refused(str(exc)) from None
        check_rate(token, request)
        return Caller(token.user, frozenset(token.scopes), token)


class Session(SessionAuth):
    """The pages' session, with Django's CSRF check for unsafe methods (ninja's, on the cookie's
    presence); an anonymous request is not this caller (401, not a CSRF failure)."""

    def __call__(self, request: HttpRequest) -> Caller | None:
        if not request.user.is_authenticated:
            return None
        if super().__call__(request) is None:
            return None
        return Caller(request.user, frozenset(SCOPES), None)


def caller(request: HttpRequest) -> Caller:
    """The caller ninja's auth put on the request."""
    found = getattr(request, "auth", None)
    assert isinstance(found, Caller), "an API operation without auth"
    return found


def granted(request: HttpRequest, scope: str) -> User:
    """The user the request acts as, if its token holds ``scope`` (a session holds every
    scope); 403 otherwise. Every operation calls this first, then the same permission and
    visibility checks as the pages (``runs.access``)."""
    who = caller(request)
    if scope not in who.scopes:
        raise Problem(
            403,
            f"This token lacks the {scope} scope (it has: {', '.join(sorted(who.scopes))}).",
            code="missing-scope",
            scope=scope,
        )
    return who.user
