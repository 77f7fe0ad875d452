"""Personal API tokens: create one (its secret returned once, only its digest stored), revoke
one, and find the usable token behind a secret (``runs.api.auth`` asks on every request)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from runs.models import ApiToken
from runs.models.token import SCOPES, TOKEN_PREFIX, token_digest

NAME_MAX = 100
# last_used_at is written at most this often per token: a busy CI token would otherwise update
# its row on every request.
TOUCH_EVERY = timedelta(seconds=60)


class TokenRefused(ValueError):
    """A token cannot be made like this, or a secret does not name a usable token; the message
    says why in words shown as they are (the settings page, the command, a 401)."""


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in their canonical order; refuses an unknown one or none at all."""
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise TokenRefused(f"Unknown scope {', '.join(unknown)}: choose from {', '.join(SCOPES)}.")
    if not wanted:
        raise TokenRefused(f"Choose at least one scope ({', '.join(SCOPES)}).")
    return [s for s in SCOPES if s in wanted]


def create_token(
    user: User,
    name: str,
    scopes: Iterable[str],
    *,
    expires_at: datetime | None = None,
    created_by: User | None = None,
    rate_per_minute: int | None = None,
) -> tuple[ApiToken, str]:
    """A new token for ``user``: (the row, the secret). The secret exists only in the return
    value: show it once and forget it."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise TokenRefused(f"Give the token a name (at most {NAME_MAX} characters).")
    checked = check_scopes(scopes)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise TokenRefused("The expiry must be in the future.")
    longest = settings.HARNESS_API_TOKEN_MAX_DAYS
    if longest and (expires_at is None or expires_at > now + timedelta(days=longest)):
        raise TokenRefused(f"A token may live at most {longest} days here: set an expiry.")
    if rate_per_minute is not None and rate_per_minute < 1:
        raise TokenRefused("The rate limit must be at least 1 request a minute.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        digest=token_digest(raw),
        scopes=checked,
        expires_at=expires_at,
        created_by=created_by or user,
        rate_per_minute=rate_per_minute,
        created_at=now,
    )
    return token, raw


def revoke_token(token: ApiToken) -> bool:
    """Revoke for good; False when it already was (the first revocation's time stands)."""
    now = timezone.now()
    won = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if won:
        token.revoked_at = now
    return bool(won)


def token_for_secret(raw: str) -> ApiToken:
    """The usable token whose secret is ``raw``, its last use noted; TokenRefused otherwise.
    Looked up by digest (an index, never a comparison of secrets), its user with it."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        raise TokenRefused("This is not an API token of this server.")
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(raw)).first()
    if token is None:
        raise TokenRefused("Unknown API token.")
    why = token.refusal() or ("" if token.user.is_active else "This token's user is inactive.")
    if why:
        raise TokenRefused(why)
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
