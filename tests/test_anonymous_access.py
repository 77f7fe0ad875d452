"""Anonymous visitors see nothing but the login page and /healthz, over HTTP and websockets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from runs.models import Approval, Event, Run, Task

PUBLIC = {"/healthz", "/accounts/login/"}
# Read by machines (a Prometheus scraper has no session): refused with 401, never a login page.
MACHINE = {"/metrics"}


def _fill(route: str) -> str:
    """A concrete path for a route, with every converter filled with 1."""
    return re.sub(r"<(?:\w+:)?\w+>", "1", route)


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield "/" + _fill(prefix + route)


def _project_paths() -> list[str]:
    paths = sorted(set(_walk(get_resolver().url_patterns)))
    # Regex routes (admin) are not reversible by substitution; keep the plain ones.
    return [p for p in paths if not any(ch in p for ch in "^$()?\\[")]


def _app_paths() -> list[str]:
    # The API answers an anonymous request with a 401 problem, not a redirect to the login page
    # (tests/api/test_permissions.py walks every one of its operations).
    return [
        p
        for p in _project_paths()
        if p not in PUBLIC | MACHINE and not p.startswith(("/admin/", "/api/"))
    ]


def _admin_paths() -> list[str]:
    return [
        p
        for p in _project_paths()
        if p.startswith("/admin/") and not p.startswith(("/admin/login/", "/admin/logout/"))
    ]


def test_url_walk_finds_the_app_and_admin_routes() -> None:
    paths = _project_paths()
    assert "/" in paths
    assert "/runs/new/" in paths
    assert "/runs/1/" in paths
    assert "/runs/1/agents/1/" in paths
    assert "/admin/" in paths
    assert len(_admin_paths()) > 5


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(MACHINE))
def test_anonymous_machine_endpoints_answer_401_with_nothing(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 401
    assert "harness_" not in response.content.decode()


@pytest.fixture
def some_run(db: Any) -> Run:
    owner = User.objects.create_user("owner", password="pw-for-tests-only")
    return Run.objects.create(playbook="codebase-audit", config={}, launched_by=owner)


def _login_redirect(
    response: Any, path: str, logins: tuple[str, ...] = ("/accounts/login/",)
) -> None:
    assert response.status_code == 302, (path, response.status_code)
    location = urlsplit(response["Location"])
    assert location.path in logins, (path, response["Location"])
    assert parse_qs(location.query).get("next") == [path], (path, response["Location"])


@pytest.mark.django_db
@pytest.mark.parametrize("path", _app_paths())
def test_anonymous_get_redirects_to_login(path: str, some_run: Run) -> None:
    _login_redirect(Client().get(path), path)


@pytest.mark.django_db
@pytest.mark.parametrize("path", _app_paths())
def test_anonymous_post_changes_nothing(path: str, some_run: Run) -> None:
    before = (
        Run.objects.count(),
        Task.objects.count(),
        Event.objects.count(),
        Approval.objects.count(),
    )
    client = Client(enforce_csrf_checks=False)
    response = client.post(
        path,
        {
            "decision": "approved",
            "playbook": "codebase-audit",
            "target_path": "samples/vulnerable_app",
            "comment": "x",
        },
    )
    assert response.status_code in (302, 403, 405), (path, response.status_code)
    if response.status_code == 302:
        assert urlsplit(response["Location"]).path == "/accounts/login/"
    after = (
        Run.objects.count(),
        Task.objects.count(),
        Event.objects.count(),
        Approval.objects.count(),
    )
    assert after == before
    some_run.refresh_from_db()
    assert some_run.status == Run.Status.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("path", _admin_paths())
def test_anonymous_admin_redirects_to_a_login_page(path: str, some_run: Run) -> None:
    # LoginRequiredMiddleware sends admin pages to the site login (LOGIN_URL) before the admin's
    # own check runs; either login page keeps the anonymous visitor out.
    _login_redirect(Client().get(path), path, logins=("/accounts/login/", "/admin/login/"))


@pytest.mark.django_db
def test_admin_login_page_itself_is_reachable() -> None:
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


@pytest.mark.django_db
def test_anonymous_admin_post_creates_no_user() -> None:
    before = User.objects.count()
    response = Client().post(
        "/admin/auth/user/add/",
        {
            "username": "intruder",
            "password1": "Xx-very-long-pw-1",
            "password2": "Xx-very-long-pw-1",
        },
    )
    assert response.status_code in (302, 403)
    assert User.objects.count() == before


@pytest.mark.django_db
def test_login_page_and_healthz_are_public() -> None:
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/runs/1/", "/ws/runs/"])
def test_anonymous_websocket_is_refused(path: str) -> None:
    from harness_site.asgi import application

    owner = User.objects.create_user("ws-owner", password="pw-for-tests-only")
    Run.objects.create(pk=1, playbook="codebase-audit", config={}, launched_by=owner)

    async def attempt() -> tuple[bool, Any]:
        communicator = WebsocketCommunicator(
            application, path, headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")]
        )
        connected, code = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        return connected, code

    connected, code = async_to_sync(attempt)()
    assert connected is False
    # Refused by the consumer's login check, not by the origin validator.
    assert code == 4401, code


@pytest.mark.django_db(transaction=True)
def test_signed_in_websocket_on_the_same_route_is_accepted() -> None:
    """Control for the test above: the same app, headers and route accept a signed-in user."""
    from django.conf import settings

    from harness_site.asgi import application

    user = User.objects.create_user("ws-user", password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    async def attempt() -> bool:
        communicator = WebsocketCommunicator(
            application,
            "/ws/runs/",
            headers=[
                (b"origin", b"http://localhost"),
                (b"host", b"localhost"),
                (b"cookie", cookie.encode()),
            ],
        )
        connected, _ = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        return bool(connected)

    assert async_to_sync(attempt)() is True
