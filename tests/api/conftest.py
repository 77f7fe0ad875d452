"""The API over real HTTP: pytest-django's live server (a real socket, the whole middleware
stack), httpx as the client, tokens made by the real actions, real Redis for the rate limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from runs.actions.tokens import create_token
from runs.models.token import SCOPES

PROBLEM = "application/problem+json"


@dataclass
class Api:
    """Calls the live server under /api/v1/, with a token, a session, or neither."""

    base: str
    http: httpx.Client

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        session: User | None = None,
        csrf: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        cookies: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if session is not None:
            client = Client()
            client.force_login(session)
            cookies[settings.SESSION_COOKIE_NAME] = client.cookies[
                settings.SESSION_COOKIE_NAME
            ].value
            if csrf:
                secret = "a" * 32
                cookies[settings.CSRF_COOKIE_NAME] = secret
                headers["X-CSRFToken"] = secret
                headers["Referer"] = self.base + "/"
        url = path if path.startswith("http") else f"{self.base}{path}"
        self.http.cookies.clear()
        for name, value in cookies.items():
            self.http.cookies.set(name, value)
        return self.http.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("POST", path, **kwargs)


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Every test makes a few users; the real hasher's cost is the tests' main expense.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api(live_server: Any) -> Iterator[Api]:
    with httpx.Client(timeout=30) as http:
        yield Api(live_server.url, http)


@pytest.fixture
def token_for() -> Callable[..., str]:
    """``token_for(user, "read", "launch", expires_at=…)``: a new token's secret (every scope
    when none is named)."""

    def make(user: User, *scopes: str, **kwargs: Any) -> str:
        _, raw = create_token(user, "test token", scopes or SCOPES, **kwargs)
        return raw

    return make


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is an RFC 9457 problem of ``status`` (and ``code``); its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == PROBLEM, response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == (f"tag:agent-harness,2026:problem:{code}" if code else "about:blank")
    assert body["instance"] == response.request.url.path
    if code:
        assert body["code"] == code
    return body
