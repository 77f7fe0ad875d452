"""Create an API token for a user, the token alone on the last line of stdout:

    TOKEN=$(python manage.py create_api_token ci-bot --scopes read,launch | tail -n 1)

The token is shown this once; only its digest is stored. It acts with the user's roles, never
beyond its scopes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from runs.actions.tokens import TokenRefused, create_token
from runs.models.token import SCOPES


class Command(BaseCommand):
    help = "Create an API token for USER; the token alone is printed on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="The username the token acts as.")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"Comma-separated, some of: {','.join(SCOPES)}.",
        )
        parser.add_argument("--name", default="", help="Shown on the user's tokens page.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Default: until revoked."
        )
        parser.add_argument(
            "--rate-per-minute", type=int, default=None, help="This token's own rate limit."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires = timezone.now() + timedelta(days=days) if days else None
        try:
            token, raw = create_token(
                user,
                options["name"] or f"created with manage.py on {timezone.now():%Y-%m-%d}",
                options["scopes"].split(","),
                expires_at=expires,
                created_by=None,
                rate_per_minute=options["rate_per_minute"],
            )
        except TokenRefused as exc:
            raise CommandError(str(exc)) from None
        until = "until revoked"
        if token.expires_at:
            until = f"until {token.expires_at:%Y-%m-%d %H:%M} UTC"
        self.stdout.write(
            f"Token {token.prefix}… for {user.username} (scopes {','.join(token.scopes)}, "
            f"{until}). Shown once; store it now:"
        )
        self.stdout.write(raw)
