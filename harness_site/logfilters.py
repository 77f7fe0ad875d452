"""A logging filter that masks the values of every configured secret before a record is written.

Secrets are read from the environment by *name* (provider API keys, SECRET_KEY); a message or an
exception that happens to contain one is redacted rather than trusted not to.
"""

from __future__ import annotations

import logging
import os
import re

SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "SECRET_KEY", "_PASSWORD")


def secret_values() -> list[str]:
    """Current values of secret-looking env vars (long enough to be worth masking)."""
    return [
        value
        for name, value in os.environ.items()
        if name.upper().endswith(SECRET_ENV_SUFFIXES) and len(value) >= 8
    ]


# API tokens (runs/models/token.py) start with "hrn_": one that reaches a message (a client
# pasting it where a URL goes, an exception quoting a header) is masked whoever it belongs to.
API_TOKEN = re.compile(r"hrn_[A-Za-z0-9_-]{16,}")


def redact(text: str) -> str:
    for value in secret_values():
        if value in text:
            text = text.replace(value, "[REDACTED]")
    return API_TOKEN.sub("hrn_[REDACTED]", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            return True
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class QuietRefusals(logging.Filter):
    """A refused request (403) or a missing page (404) is one line: Django attaches the
    exception, whose traceback says nothing the line does not, to every one of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "django.request" and getattr(record, "status_code", None) in (403, 404):
            record.exc_info = None
            record.exc_text = None
        return True


class QuietHealth(logging.Filter):
    """Drops Django's ERROR "Service Unavailable: /healthz" for a degraded health check: the
    check has logged one WARNING saying what is down, and a 503 there is an answer, not a
    server error (a probe during a Redis restart would otherwise log an ERROR every time)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (
            getattr(record, "status_code", None) == 503
            and getattr(request, "path", "") == "/healthz"
        )
