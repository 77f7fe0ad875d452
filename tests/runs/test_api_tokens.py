"""API tokens: made by the command or the actions, stored hashed, shown once, refused when
revoked or expired."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from runs.actions.tokens import TokenRefused, create_token, revoke_token, token_for_secret
from runs.api.auth import resolve_bearer
from runs.models import ApiToken
from runs.models.token import token_digest


def _command(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.mark.django_db
def test_create_api_token_prints_the_token_alone_on_the_last_line(make_user) -> None:
    user = make_user("operator", username="ci-bot")
    lines = _command("ci-bot", "--scopes", "read,launch")
    raw = lines[-1]
    assert raw.startswith("hrn_") and " " not in raw and len(raw) > 40
    token = ApiToken.objects.get()
    assert token.user == user
    assert token.scopes == ["read", "launch"]
    assert token.expires_at is None
    # Only the digest is stored: the secret appears in no column.
    assert token.digest == token_digest(raw)
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert not any(raw in str(value) for value in row.values())
    assert token.prefix in lines[0] and raw not in lines[0]
    assert token_for_secret(raw) == token


@pytest.mark.django_db
def test_create_api_token_refuses_an_unknown_scope_or_user(make_user) -> None:
    make_user("operator", username="ci-bot")
    with pytest.raises(CommandError, match="Unknown scope admin"):
        _command("ci-bot", "--scopes", "read,admin")
    with pytest.raises(CommandError, match="No user 'nobody-here'"):
        _command("nobody-here", "--scopes", "read")
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_create_api_token_with_an_expiry(make_user) -> None:
    make_user("viewer", username="nightly")
    _command("nightly", "--scopes", "read", "--expires-in-days", "7")
    token = ApiToken.objects.get()
    assert token.expires_at is not None
    left = token.expires_at - timezone.now()
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)


@pytest.mark.django_db
def test_revoked_expired_and_unknown_secrets_are_refused(make_user) -> None:
    user = make_user("viewer")
    token, raw = create_token(user, "laptop", ["read"])
    assert revoke_token(token) is True
    assert revoke_token(token) is False
    with pytest.raises(TokenRefused, match="revoked"):
        token_for_secret(raw)
    soon = timezone.now() + timedelta(seconds=60)
    token, raw = create_token(user, "short", ["read"], expires_at=soon)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TokenRefused, match="expired"):
        token_for_secret(raw)
    with pytest.raises(TokenRefused, match="Unknown"):
        token_for_secret("hrn_" + "x" * 43)
    with pytest.raises(TokenRefused, match="not an API token"):
        token_for_secret("Basic abc")


@pytest.mark.django_db
def test_a_token_of_an_inactive_user_is_refused(make_user) -> None:
    user = make_user("viewer")
    _, raw = create_token(user, "laptop", ["read"])
    user.is_active = False
    user.save()
    with pytest.raises(TokenRefused, match="inactive"):
        token_for_secret(raw)


@pytest.mark.django_db
def test_last_use_is_noted_at_most_once_a_minute(make_user) -> None:
    user = make_user("viewer")
    token, raw = create_token(user, "laptop", ["read"])
    assert token.last_used_at is None
    first = token_for_secret(raw).last_used_at
    assert first is not None
    assert token_for_secret(raw).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    again = token_for_secret(raw).last_used_at
    assert again is not None and again > first


@pytest.mark.django_db
def test_token_lifetime_cap(make_user, settings) -> None:
    settings.HARNESS_API_TOKEN_MAX_DAYS = 30
    user = make_user("viewer")
    with pytest.raises(TokenRefused, match="at most 30 days"):
        create_token(user, "forever", ["read"])
    token, _ = create_token(user, "month", ["read"], expires_at=timezone.now() + timedelta(days=29))
    assert token.pk


@pytest.mark.django_db
def test_an_admin_revokes_tokens_from_the_admin(make_user, client) -> None:
    admin_user = make_user(None, is_staff=True, is_superuser=True)
    token, _ = create_token(make_user("viewer"), "laptop", ["read"])
    client.force_login(admin_user)
    page = client.get("/admin/runs/apitoken/")
    assert page.status_code == 200 and token.digest not in page.text
    response = client.post(
        "/admin/runs/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    detail = client.get(f"/admin/runs/apitoken/{token.pk}/change/")
    assert detail.status_code == 200 and token.digest not in detail.text


@pytest.mark.django_db
def test_resolve_bearer_is_the_one_token_check(make_user, rf) -> None:
    """What other endpoints that take tokens (the metrics) call: the caller, or None."""
    user = make_user("viewer")
    token, raw = create_token(user, "scraper", ["metrics"])
    caller = resolve_bearer(rf.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}"))
    assert caller is not None
    assert (caller.user, caller.scopes, caller.token) == (user, frozenset({"metrics"}), token)
    assert resolve_bearer(rf.get("/metrics")) is None
    assert resolve_bearer(rf.get("/metrics", HTTP_AUTHORIZATION=f"Basic {raw}")) is None
    assert resolve_bearer(rf.get("/metrics", HTTP_AUTHORIZATION="Bearer hrn_nope")) is None
    revoke_token(token)
    assert resolve_bearer(rf.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}")) is None
