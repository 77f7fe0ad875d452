"""Which URLs a webhook may be sent to: no SSRF through webhooks.

A URL must be http(s) with a host, and every address its host resolves to must be a public
(globally routable) unicast address, unless it lies in one of the networks the deployment
allows (``HARNESS_WEBHOOK_ALLOWED_NETWORKS``, e.g. ``10.0.0.0/8`` for an intranet receiver,
``127.0.0.1/32`` for a receiver on the same machine). So loopback, private, link-local (the cloud
metadata address 169.254.169.254 among them), shared, multicast, reserved and unspecified
addresses are refused by default, and an IPv4 address hidden in an IPv6 one (``::ffff:127.0.0.1``)
is judged as the IPv4 address it is.

The check is made when a subscription is saved (a clear message) and again at every attempt,
on the addresses the name resolves to then; the delivery connects to one of exactly those
addresses (``runs/webhooks/http.py``), so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot move it elsewhere. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class AddressRefused(ValueError):
    """The URL may not receive webhooks; the message says why, for the administrator.
    ``transient``: the name did not resolve, which may pass (every other refusal will not)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``, in the resolver's order) and what to
    say (``host`` for the Host header and TLS, ``path`` with its query)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The allowed networks from settings; raises ValueError naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a network: {value!r} (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _plain(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusal(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why ``address`` may not be reached, or None when it may."""
    address = _plain(address)
    if any(address.version == net.version and address in net for net in allowed):
        return None
    for flag, what in (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "an unspecified address"),  # 0.0.0.0 reaches this very machine
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, flag):
            return what
    if not address.is_global:
        return "not a public address"
    return None


def check_url(
    url: str,
    allowed: Sequence[IPNetwork] = (),
    resolve: Resolver = system_resolver,
) -> Target:
    """The checked target of ``url``; raises ``AddressRefused`` with the reason."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("Only http:// and https:// URLs can receive webhooks.")
    if parts.username or parts.password:
        raise AddressRefused("Put no user name or password in the URL.")
    host = parts.hostname
    if not host:
        raise AddressRefused("The URL has no host.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"{host} does not resolve ({exc}).", transient=True) from None
        if not found:
            raise AddressRefused(f"{host} does not resolve.", transient=True)
    for text in found:
        why = refusal(ipaddress.ip_address(text.split("%")[0]), allowed)
        if why:
            shown = host if literal is not None else f"{host} resolves to {text}, which"
            raise AddressRefused(
                f"{shown} is {why}: webhooks are not sent to this server's own or internal "
                "networks unless HARNESS_WEBHOOK_ALLOWED_NETWORKS allows it."
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, tuple(found))
