"""One mapping of the provider SDKs' failures to secret-free ProviderErrors.

The ``openai`` and ``anthropic`` SDKs are generated from one template and raise the same
exception shapes (timeout, connection, HTTP status with ``status_code``/``request_id``/``message``,
unreadable response), so what a failure means to the harness is decided here once: 429 is a
wait, 5xx (Anthropic's 529 "overloaded" included), 408, 409, 425, timeouts, lost connections and
unreadable answers are transient, everything else is permanent. The server's own message is kept,
masked (OpenAI echoes part of a wrong key in its 401 text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from agents.contract import ProviderError, ProviderRateLimited
from agents.providers.prompt import retry_after_seconds, safe_message
from agents.providers.registry import MissingApiKey, ProviderConfig

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class SdkErrors:
    """One SDK's exception classes and what else its errors need to be read."""

    base: type[Exception]  # every exception the SDK raises derives from it
    timeout: type[Exception]
    connection: type[Exception]
    status: type[Exception]
    unreadable: type[Exception]  # a response the SDK could not validate
    default_url: str  # where the SDK goes without a base URL (named when it cannot connect)
    # 429s with one of these error codes are an exhausted quota: an error, not a wait.
    quota_codes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, sdk: ModuleType, base: type[Exception], default_url: str, **more: Any) -> SdkErrors:
        """An SDK's errors by the names both SDKs give them."""
        return cls(
            base,
            sdk.APITimeoutError,
            sdk.APIConnectionError,
            sdk.APIStatusError,
            sdk.APIResponseValidationError,
            default_url,
            **more,
        )


def map_sdk_error(
    exc: Exception, sdk: SdkErrors, config: ProviderConfig, secret: str, timeout: float
) -> ProviderError:
    """An SDK exception as a ProviderError whose message holds no secret (with the server's
    Retry-After when it sends one)."""
    where = f"provider {config.name!r}"
    if isinstance(exc, sdk.timeout):
        return ProviderError(
            f"{where}: no response within {timeout:g}s", permanent=False, error_type="timeout"
        )
    if isinstance(exc, sdk.connection):
        host = urlsplit(config.resolved_base_url() or sdk.default_url).netloc
        return ProviderError(
            f"{where}: cannot connect to {host}", permanent=False, error_type="connection_error"
        )
    if isinstance(exc, sdk.status):
        error: Any = exc  # the SDKs' status errors share these attributes
        status = error.status_code
        detail = safe_message(error.message, secret)
        request_id = f" (request id {error.request_id})" if error.request_id else ""
        transient = status >= 500 or status in TRANSIENT_STATUSES
        wait = retry_after_seconds(error.response.headers)
        if status == 429 and getattr(error, "code", None) not in sdk.quota_codes:
            # The server asks us to slow down: a wait like our own limiter's, not a failed
            # attempt (else a busy provider fails agents). An exhausted quota stays an error.
            return ProviderRateLimited(
                f"{where}: HTTP 429: {detail}{request_id}",
                retry_after=wait or 0.0,
                error_type="429",
            )
        return ProviderError(
            f"{where}: HTTP {status}: {detail}{request_id}",
            permanent=not transient,
            retry_after=wait,
            error_type=str(status),
        )
    if isinstance(exc, sdk.unreadable | json.JSONDecodeError):
        return ProviderError(
            f"{where}: the server's response could not be read",
            permanent=False,
            error_type="invalid_response",
        )
    return ProviderError(f"{where}: {safe_message(str(exc), secret)}", permanent=True)


def call_sdk[T](
    sdk: SdkErrors, config: ProviderConfig, timeout: float, call: Callable[[str], T]
) -> T:
    """``call(key)`` with the key read now; any failure raised as a mapped ProviderError, the
    SDK's exception left out of its chain (no logged traceback shows what that carried)."""
    secret = ""
    try:
        secret = config.api_key()
        return call(secret)
    except MissingApiKey as exc:
        raise ProviderError(str(exc), permanent=True, error_type="missing_api_key") from None
    except (sdk.base, json.JSONDecodeError) as exc:
        raise map_sdk_error(exc, sdk, config, secret, timeout) from None
