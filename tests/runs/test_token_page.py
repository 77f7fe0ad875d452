"""The API tokens page: a user makes a token (shown once), sees only their own, revokes them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from runs.actions.tokens import create_token
from runs.models import ApiToken
from runs.models.token import token_digest

pytestmark = pytest.mark.django_db
URL = "/settings/tokens/"


def _client(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_making_a_token_shows_it_once_and_keeps_only_its_digest(operator) -> None:
    client = _client(operator)
    response = client.post(URL, {"name": "CI", "scopes": ["read", "launch"]})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    secret = re.search(r'<pre class="pre" id="token-secret">(hrn_[^<]+)</pre>', response.text)
    assert secret is not None
    token = ApiToken.objects.get()
    assert token.digest == token_digest(secret[1])
    assert (token.user, token.name, token.scopes) == (operator, "CI", ["read", "launch"])
    assert token.expires_at is None
    # Not on the page again, and it works on the API as its user.
    assert secret[1] not in client.get(URL).text
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret[1]}")
    assert api.get("/api/v1/runs/").status_code == 200


def test_expiry_and_bad_input(viewer) -> None:
    client = _client(viewer)
    response = client.post(URL, {"name": "week", "scopes": ["read"], "expires_in_days": "7"})
    assert response.status_code == 201
    assert ApiToken.objects.get().expires_at is not None
    response = client.post(URL, {"name": "", "scopes": []})
    assert response.status_code == 400
    assert ApiToken.objects.count() == 1
    # A viewer is told a launch scope would grant nothing beyond their roles.
    assert "Your roles do not allow launch or review" in client.get(URL).text


def test_the_page_lists_only_ones_own_tokens(viewer, operator) -> None:
    mine, _ = create_token(viewer, "mine", ["read"])
    theirs, _ = create_token(operator, "theirs", ["read"])
    page = _client(viewer).get(URL).text
    assert f'id="token-{mine.pk}"' in page and mine.prefix in page
    assert f'id="token-{theirs.pk}"' not in page and theirs.prefix not in page


def test_revoking_ones_own_token_and_not_anothers(viewer, operator) -> None:
    mine, raw = create_token(viewer, "mine", ["read"])
    theirs, _ = create_token(operator, "theirs", ["read"])
    client = _client(viewer)
    response = client.post(f"/settings/tokens/{mine.pk}/revoke/")
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/runs/").status_code == 401
    assert client.post(f"/settings/tokens/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_the_page_keeps_csrf(viewer) -> None:
    client = _client(viewer, enforce_csrf_checks=True)
    assert client.post(URL, {"name": "CI", "scopes": ["read"]}).status_code == 403
    assert not ApiToken.objects.exists()
