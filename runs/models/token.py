from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

# What a token may be used for. A token acts with its user's roles and never beyond its scopes:
# ``read`` every GET of the API, ``launch`` an operator's writes (launch, cancel, retry,
# re-aggregate, budget extension), ``review`` a reviewer's decisions, ``metrics`` /metrics.
SCOPES = ("read", "launch", "review", "metrics")
# Every token starts with this, so a leaked one is recognisable (secret scanners, log redaction).
TOKEN_PREFIX = "hrn_"  # noqa: S105 - a prefix, not a secret


def token_digest(raw: str) -> str:
    """What is stored of a token: its SHA-256. A token is 256 random bits, so a plain hash is
    enough (no salt or slow hash needed: there is nothing to guess from a dictionary)."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        """Neither revoked nor expired: the same rule as ``ApiToken.refusal``."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)


class ApiToken(models.Model):
    """A personal API token (``Authorization: Bearer hrn_…``). Only its digest is stored; the
    token itself is shown once, when it is created (``runs.actions.tokens.create_token``).

    A token is usable until it is revoked (``revoked_at``, set once) or ``expires_at`` passes.
    ``prefix`` (the first characters) lets a person tell their tokens apart without the secret.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, help_text="Some of: read, launch, review, metrics.")
    rate_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests a minute; blank: HARNESS_API_RATE_PER_MINUTE."
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who made it: the user, or an admin with manage.py create_api_token.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.user})"

    @property
    def rate_limit(self) -> int:
        return self.rate_per_minute or settings.HARNESS_API_RATE_PER_MINUTE

    def refusal(self) -> str:
        """Why the token cannot be used now ("" when it can)."""
        if self.revoked_at is not None:
            return "This token was revoked."
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "This token has expired."
        return ""
