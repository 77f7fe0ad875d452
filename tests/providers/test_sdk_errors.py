"""How each SDK's exceptions become ProviderErrors: kind (wait, transient, permanent), the wait,
and the exact message, for both SDKs from one table (the real SDK exception classes, built the
way the SDKs build them from an HTTP response)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from agents.contract import ProviderError, ProviderRateLimited
from agents.providers import anthropic_provider, openai_provider
from agents.providers.registry import ProviderConfig
from agents.providers.sdk_errors import map_sdk_error

SECRET = "sk-live-0123456789abcdefghijSECRET"
SDKS: dict[str, Any] = {"openai": openai, "anthropic": anthropic}
ERRORS = {"openai": openai_provider.ERRORS, "anthropic": anthropic_provider.ERRORS}
DEFAULT_HOST = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}
REQUEST = httpx2.Request("POST", "http://gateway.test/v1/chat")


def status_error(
    kind: str, status: int, message: str, code: str | None = None, **headers: str
) -> Any:
    response = httpx2.Response(
        status, headers={"x-request-id": "req_1", "request-id": "req_1", **headers}, request=REQUEST
    )
    body = {"message": message, "type": "error", "code": code}
    return SDKS[kind].APIStatusError(message, response=response, body=body)


def mapped(kind: str, exc: Exception, base_url: str | None = None) -> ProviderError:
    config = ProviderConfig(name="gw", kind=kind, base_url=base_url, default_model="m")  # type: ignore[arg-type]
    return map_sdk_error(exc, ERRORS[kind], config, SECRET, 2.5)


def shape(error: ProviderError) -> tuple[str, str, bool, float | None]:
    return type(error).__name__, str(error), error.permanent, error.retry_after


@pytest.fixture(params=sorted(SDKS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_timeouts_and_lost_connections_are_transient_and_name_the_host(kind: str) -> None:
    sdk = SDKS[kind]
    assert shape(mapped(kind, sdk.APITimeoutError(request=REQUEST))) == (
        "ProviderError",
        "provider 'gw': no response within 2.5s",
        False,
        None,
    )
    lost = sdk.APIConnectionError(request=REQUEST)
    assert shape(mapped(kind, lost)) == (
        "ProviderError",
        f"provider 'gw': cannot connect to {DEFAULT_HOST[kind]}",
        False,
        None,
    )
    assert str(mapped(kind, lost, "http://127.0.0.1:9/v1")) == (
        "provider 'gw': cannot connect to 127.0.0.1:9"
    )


def test_429_is_a_wait_with_the_servers_retry_after(kind: str) -> None:
    slow = status_error(kind, 429, "Slow down", **{"retry-after": "3"})
    assert shape(mapped(kind, slow)) == (
        "ProviderRateLimited",
        "provider 'gw': HTTP 429: Slow down (request id req_1)",
        False,
        3.0,
    )
    assert mapped(kind, status_error(kind, 429, "Slow down")).retry_after == 0.0


def test_an_exhausted_openai_quota_is_an_error_not_a_wait() -> None:
    quota = status_error(
        "openai", 429, "No quota", code="insufficient_quota", **{"retry-after": "4"}
    )
    assert shape(mapped("openai", quota)) == (
        "ProviderError",
        "provider 'gw': HTTP 429: No quota (request id req_1)",
        False,
        4.0,
    )
    # Anthropic has no such code: its 429 is always a wait.
    other = status_error("anthropic", 429, "No quota", code="insufficient_quota")
    assert isinstance(mapped("anthropic", other), ProviderRateLimited)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        *[(400, True), (401, True), (404, True), (422, True)],
        *[(408, False), (409, False), (425, False), (500, False), (503, False), (529, False)],
    ],
)
def test_status_codes_are_transient_or_permanent(kind: str, status: int, permanent: bool) -> None:
    error = mapped(
        kind, status_error(kind, status, f"Bad key {SECRET}", **{"retry-after-ms": "1500"})
    )
    assert shape(error) == (
        "ProviderError",
        f"provider 'gw': HTTP {status}: Bad key [REDACTED] (request id req_1)",
        permanent,
        1.5,
    )


def test_a_status_error_without_request_id_says_none(kind: str) -> None:
    response = httpx2.Response(502, request=REQUEST)
    exc = SDKS[kind].APIStatusError("Bad gateway", response=response, body=None)
    assert shape(mapped(kind, exc)) == (
        "ProviderError",
        "provider 'gw': HTTP 502: Bad gateway",
        False,
        None,
    )


def test_unreadable_answers_are_transient_and_anything_else_is_permanent(kind: str) -> None:
    sdk = SDKS[kind]
    unreadable = "provider 'gw': the server's response could not be read"
    invalid = sdk.APIResponseValidationError(httpx2.Response(200, request=REQUEST), None)
    assert shape(mapped(kind, invalid)) == ("ProviderError", unreadable, False, None)
    garbled = json.JSONDecodeError("Expecting value", "<html>", 0)
    assert shape(mapped(kind, garbled)) == ("ProviderError", unreadable, False, None)
    base = sdk.OpenAIError if kind == "openai" else sdk.AnthropicError
    assert shape(mapped(kind, base(f"client broke with {SECRET}"))) == (
        "ProviderError",
        "provider 'gw': client broke with [REDACTED]",
        True,
        None,
    )
