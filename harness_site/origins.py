"""The websocket handshake's Origin check: scheme + host + port.

Browsers send cookies with a cross-site websocket handshake, so the Origin header is what stops
another site (or another port of this host: a different origin, whatever the host) from opening
the dashboard's live feeds in a signed-in user's name. channels' ``AllowedHostsOriginValidator``
compares the host only. This applies the rule Django's CSRF check applies to a form's POST, so a
page that may post a form may open the websocket and nothing else may:

- the origin the request was served on: the scheme (``https`` when the handshake came over TLS,
  ``scope["scheme"] == "wss"``, or when ``SECURE_PROXY_SSL_HEADER`` says the proxy in front did),
  the host and port of the ``Host`` header (``X-Forwarded-Host`` with ``USE_X_FORWARDED_HOST``),
  which ``ALLOWED_HOSTS`` must allow (daphne's own TLS endpoint sets no scheme in a websocket
  scope: such a deployment lists its https origin in ``CSRF_TRUSTED_ORIGINS``);
- or one of ``CSRF_TRUSTED_ORIGINS`` (scheme, host and port; ``https://*.example.com`` allows
  the subdomains), for a page served under another name than the one the request reaches.

A port left out is the scheme's default (80, 443) on both sides. No Origin header (a client that
is not a browser) is refused unless ``ALLOWED_HOSTS`` has ``"*"``, as channels decided; a
malformed or ``null`` one is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def _parse(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) origin, or None when it is not one."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
            return None
        return scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is no number, or out of range
        return None


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    """Header names lower-cased; a repeated header keeps its first value."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers") or []:
        out.setdefault(name.decode("latin1").lower(), value.decode("latin1"))
    return out


def _served_origin(scope: dict[str, Any], headers: dict[str, str]) -> Origin | None:
    """The origin the handshake was served on, as Django's ``request.get_host()`` and
    ``request.is_secure()`` would see it; None when ALLOWED_HOSTS refuses the host."""
    host = headers.get("host", "")
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"].split(",")[0].strip()
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # Django's own default for a development server
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed):
        return None
    secure = scope.get("scheme") in ("wss", "https")
    if settings.SECURE_PROXY_SSL_HEADER:
        name, value = settings.SECURE_PROXY_SSL_HEADER
        forwarded = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower())
        if forwarded is not None:
            secure = forwarded.split(",")[0].strip() == value
    scheme = "https" if secure else "http"
    try:
        number = int(port) if port else DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, domain.strip("[]"), number


def _trusted(origin: Origin) -> bool:
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        wildcard = "://*." in entry
        trusted = _parse(entry.replace("://*.", "://", 1) if wildcard else entry)
        if trusted is None or trusted[0] != origin[0] or trusted[2] != origin[2]:
            continue
        if origin[1] == trusted[1] or (wildcard and is_same_domain(origin[1], f".{trusted[1]}")):
            return True
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the websocket handshake in ``scope`` comes from an allowed origin."""
    headers = _headers(scope)
    if "origin" not in headers:
        return "*" in settings.ALLOWED_HOSTS
    origin = _parse(headers["origin"])
    if origin is None:
        return False
    served = _served_origin(scope, headers)
    return (served is not None and origin == served) or _trusted(origin)


class OriginValidator:
    """ASGI middleware: passes a websocket handshake from an allowed origin on to
    ``application``, refuses any other (the handshake is closed before it is accepted)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("OriginValidator only guards websocket connections")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
