"""One webhook POST to a checked address, with short timeouts and no redirects.

The connection goes to an address ``addresses.check_url`` approved (never to a second lookup of
the name); the Host header, TLS SNI and certificate check use the URL's host name. A redirect is
an answer like any other: its code is recorded and its Location never requested. At most
``MAX_BODY`` bytes of the answer are read (kept for the delivery's record, shortened).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3

from runs.webhooks.addresses import Target

MAX_BODY = 2048
USER_AGENT = "agent-harness-webhooks/1"


@dataclass(frozen=True)
class Answer:
    code: int | None  # None: no HTTP answer (connection refused, timeout, TLS error)
    ms: int
    error: str  # short, for the record: "" on a 2xx


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
) -> Answer:
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    all_headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    started = time.monotonic()
    last_error = ""
    for address in target.addresses[:2]:  # a dual-stack name: one more address, not every one
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=all_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            last_error = _describe(exc)
            pool.close()
            continue
        try:
            text = response.read(MAX_BODY, decode_content=False).decode("utf-8", "replace")
        except urllib3.exceptions.HTTPError:
            text = ""
        finally:
            response.release_conn()
            pool.close()
        ms = int((time.monotonic() - started) * 1000)
        code = response.status
        if 200 <= code < 300:
            return Answer(code, ms, "")
        detail = f"HTTP {code}"
        if 300 <= code < 400:
            detail += " (redirects are not followed)"
        elif text.strip():
            detail += f": {' '.join(text.split())[:200]}"
        return Answer(code, ms, detail)
    return Answer(None, int((time.monotonic() - started) * 1000), last_error[:300])


def _pool(target: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(
        address, target.port, timeout=timeout, maxsize=1, retries=False
    )


def _describe(exc: Exception) -> str:
    """A short reason without the library's object reprs."""
    for reason in (exc, getattr(exc, "reason", None)):
        # urllib3 makes NewConnectionError a ConnectTimeoutError: ask for it first.
        if isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionError):
            return "connection refused or unreachable"
        if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
            return "connection timed out"
        if isinstance(reason, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return "no answer in time"
        if isinstance(reason, urllib3.exceptions.SSLError):
            return f"TLS error: {str(reason)[:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"
