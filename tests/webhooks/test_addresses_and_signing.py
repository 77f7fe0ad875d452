"""No SSRF through webhooks (which URLs and addresses are refused, and why), and signatures that
the Standard Webhooks reference verifier accepts."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from runs.webhooks.addresses import AddressRefused, check_url, parse_networks
from runs.webhooks.signing import signed_headers


def fixed(*addresses: str):
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://127.9.9.9/hook", "loopback"),
        ("http://[::1]:9000/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://192.168.1.20/hook", "private"),
        ("http://[fd00::1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://100.64.0.1/hook", "public"),  # carrier-grade NAT: not a public address
    ],
)
def test_internal_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(AddressRefused, match=why):
        check_url(url)


def test_a_dns_name_that_resolves_to_loopback_is_refused() -> None:
    # localhost is a name, resolved by the system resolver like any other.
    with pytest.raises(
        AddressRefused, match=r"localhost resolves to 127\.0\.0\.1, which is a loopback"
    ):
        check_url("http://localhost:8000/hook")


def test_a_name_is_refused_when_any_of_its_addresses_is_internal() -> None:
    resolve = fixed("93.184.215.14", "10.0.0.7")
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.7, which is a private address"):
        check_url("https://hooks.example.com/x", resolve=resolve)


def test_a_public_name_is_accepted_with_the_addresses_to_connect_to() -> None:
    target = check_url("https://hooks.example.com:8443/x?a=1", resolve=fixed("93.184.215.14"))
    assert target.addresses == ("93.184.215.14",)
    assert (target.host, target.port, target.path) == ("hooks.example.com", 8443, "/x?a=1")
    assert target.host_header == "hooks.example.com:8443"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)", "//x"],
)
def test_only_http_and_https_are_accepted(url: str) -> None:
    with pytest.raises(AddressRefused, match="Only http:// and https://"):
        check_url(url, resolve=fixed("93.184.215.14"))


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(AddressRefused, match="no user name or password"):
        check_url("https://user:pw@hooks.example.com/", resolve=fixed("93.184.215.14"))


def test_an_unresolvable_name_is_a_transient_refusal() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(AddressRefused, match="does not resolve") as info:
        check_url("https://nowhere.invalid/", resolve=fails)
    assert info.value.transient


def test_allowed_networks_let_exactly_those_addresses_through() -> None:
    allowed = parse_networks(["127.0.0.1/32", "10.0.0.0/8"])
    assert check_url("http://127.0.0.1:9/x", allowed).addresses == ("127.0.0.1",)
    assert check_url("http://10.2.3.4/x", allowed).addresses == ("10.2.3.4",)
    with pytest.raises(AddressRefused, match="private"):
        check_url("http://192.168.0.1/x", allowed)
    with pytest.raises(AddressRefused, match="link-local"):
        check_url("http://169.254.169.254/x", allowed)


def test_a_bad_allowed_network_is_named() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks(["nope"])


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "run.finished", "data": {"run": {"id": 1}}}).encode()
    headers = signed_headers(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(body, headers)


def test_signature_matches_the_spec_example() -> None:
    # The example of the Standard Webhooks specification (spec/standard-webhooks.md).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = signed_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
