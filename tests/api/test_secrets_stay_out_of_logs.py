"""A token is never logged: not when it is used, not when it is refused, not when it is quoted."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from harness_site.logfilters import RedactSecrets, redact


@pytest.mark.django_db(transaction=True)
def test_requests_with_tokens_log_no_secret(api: Any, viewer, token_for, caplog, settings):
    settings.DEBUG = True  # ninja's own bearer auth logs an unexpected header under DEBUG
    good = token_for(viewer, "read")
    with caplog.at_level(logging.DEBUG):
        assert api.get("/api/v1/runs/", token=good).status_code == 200
        assert api.get("/api/v1/runs/", token=good + "x").status_code == 401
        response = api.get("/api/v1/runs/", headers={"Authorization": f"Token {good}"})
        assert response.status_code == 401
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/v1/runs/" in logged  # the refusals were logged, as lines without the secret
    assert good not in logged


def test_a_token_quoted_in_a_message_is_masked() -> None:
    secret = "hrn_" + "Ab1_-" * 8
    assert redact(f"bad header Bearer {secret}!") == "bad header Bearer hrn_[REDACTED]!"
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "got %s", (secret,), None)
    RedactSecrets().filter(record)
    assert secret not in record.getMessage()
