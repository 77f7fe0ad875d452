"""The websocket handshake's Origin is checked as scheme + host + port: the origin the dashboard
is served on (the request's Host, which ALLOWED_HOSTS must allow, and its scheme: TLS, or the
proxy's SECURE_PROXY_SSL_HEADER), or one of CSRF_TRUSTED_ORIGINS. Another port or scheme of the
same host is refused; no Origin header is refused (unless ALLOWED_HOSTS has "*"), as before."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from harness_site.asgi import application
from harness_site.origins import origin_allowed

HOST = "127.0.0.1:8000"


def _scope(origin: str | None, host: str = HOST, **extra: Any) -> dict[str, Any]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(name.encode(), value.encode()) for name, value in extra.pop("headers", [])]
    return {"type": "websocket", "path": "/ws/runs/", "headers": headers, **extra}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("HTTP://127.0.0.1:8000", True),  # schemes and hosts compare case-insensitively
        ("http://127.0.0.1:9999", False),  # the same host, another port
        ("http://127.0.0.1", False),  # the default port is 80, not 8000
        ("https://127.0.0.1:8000", False),  # another scheme
        ("ws://127.0.0.1:8000", False),  # no page is served over ws:
        ("http://localhost:8000", False),  # an allowed host, but not the one the request is for
        ("http://evil.example:8000", False),
        ("http://127.0.0.1:8000.evil.example", False),
        ("http://127.0.0.1:notaport", False),
        ("null", False),  # sandboxed frames and file: pages
        ("", False),
        (None, False),  # no Origin header: refused, as channels' validator did
    ],
)
def test_origin_must_be_the_served_scheme_host_and_port(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(_scope(origin)) is allowed


def test_default_ports_are_the_schemes_own() -> None:
    assert origin_allowed(_scope("http://localhost", host="localhost"))
    assert origin_allowed(_scope("http://localhost:80", host="localhost"))
    assert not origin_allowed(_scope("http://localhost:8000", host="localhost"))


def test_a_host_that_allowed_hosts_refuses_is_refused_whatever_the_origin() -> None:
    assert not origin_allowed(_scope("http://evil.example", host="evil.example"))


@override_settings(
    ALLOWED_HOSTS=["harness.example.com"],
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)
def test_behind_a_tls_proxy_the_origin_is_https() -> None:
    proxied = {"headers": [("x-forwarded-proto", "https")]}
    host = "harness.example.com"
    assert origin_allowed(_scope("https://harness.example.com", host=host, **proxied))
    assert not origin_allowed(_scope("http://harness.example.com", host=host, **proxied))
    assert not origin_allowed(_scope("https://harness.example.com:8443", host=host, **proxied))
    # Without the proxy's header the request came in over plain HTTP.
    assert origin_allowed(_scope("http://harness.example.com", host=host))
    assert not origin_allowed(_scope("https://harness.example.com", host=host))


def test_a_tls_websocket_scope_is_https() -> None:
    assert origin_allowed(_scope("https://127.0.0.1:8000", scheme="wss"))
    assert not origin_allowed(_scope("http://127.0.0.1:8000", scheme="wss"))


@override_settings(CSRF_TRUSTED_ORIGINS=["https://dash.example.com:8443", "https://*.example.org"])
def test_csrf_trusted_origins_are_allowed_with_their_scheme_and_port() -> None:
    assert origin_allowed(_scope("https://dash.example.com:8443"))
    assert not origin_allowed(_scope("https://dash.example.com"))
    assert not origin_allowed(_scope("http://dash.example.com:8443"))
    assert origin_allowed(_scope("https://a.example.org"))
    assert origin_allowed(_scope("https://example.org"))
    assert not origin_allowed(_scope("https://a.example.org:444"))
    assert not origin_allowed(_scope("https://evilexample.org"))


@override_settings(ALLOWED_HOSTS=["*"])
def test_a_wildcard_allowed_hosts_still_wants_the_same_origin() -> None:
    assert origin_allowed(_scope("http://anything.example:8000", host="anything.example:8000"))
    assert not origin_allowed(_scope("http://other.example:8000", host="anything.example:8000"))
    assert origin_allowed(_scope(None))  # as channels' validator decided for "*"


# --- through the real ASGI application ---------------------------------------------------------


def _handshake(origin: str | None, cookie: str, host: str = HOST) -> bool:
    async def attempt() -> bool:
        scope = _scope(origin, host=host, headers=[("cookie", cookie)])
        scope.update(query_string=b"", subprotocols=[])
        comm = ApplicationCommunicator(application, scope)
        await comm.send_input({"type": "websocket.connect"})
        answer = await comm.receive_output(timeout=5)
        accepted = answer["type"] == "websocket.accept"
        if accepted:
            await comm.send_input({"type": "websocket.disconnect", "code": 1000})
            await comm.wait(timeout=5)
        return accepted

    return bool(async_to_sync(attempt)())


@pytest.mark.django_db(transaction=True)
def test_the_dashboards_websocket_takes_only_its_own_origin() -> None:
    user = User.objects.create_user("ws-origin", password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    assert _handshake("http://127.0.0.1:8000", cookie) is True
    assert _handshake("http://127.0.0.1:9999", cookie) is False  # same host, another port
    assert _handshake("https://127.0.0.1:8000", cookie) is False  # same host, another scheme
    assert _handshake(None, cookie) is False  # no Origin header
