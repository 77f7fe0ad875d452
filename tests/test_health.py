"""/healthz: anonymous, JSON, and honest about the database, Redis and the Celery workers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz_answers_anonymous_users_with_json_for_each_dependency(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code in (200, 503)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    for part in ("database", "redis", "workers"):
        assert isinstance(body[part]["ok"], bool), part
    assert body["database"]["ok"] is True
    assert body["status"] in ("ok", "degraded")
    # Never cached by a proxy: a stale "ok" would hide an outage.
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_healthz_reveals_no_run_data_and_needs_no_login(client: Client) -> None:
    response = client.get("/healthz", follow=False)
    assert response.status_code != 302
    assert "/accounts/login/" not in response.get("Location", "")


def test_healthz_tells_anonymous_callers_the_status_only(client: Client) -> None:
    body = client.get("/healthz").json()
    assert set(body) == {"status", "database", "redis", "workers"}
    assert all(body[part] == {"ok": body[part]["ok"]} for part in ("database", "redis", "workers"))


def test_healthz_details_are_for_staff(admin_client: Client, viewer_client: Client) -> None:
    assert set(viewer_client.get("/healthz").json()["database"]) == {"ok"}
    details = admin_client.get("/healthz").json()
    assert details["database"]["vendor"] and "ms" in details["redis"]
    assert "workers" in details["workers"]


def test_healthz_refuses_post(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


def test_healthz_without_a_worker_is_503_with_workers_down(admin_client: Client) -> None:
    # Redis is real; no worker answers the ping. (Patched rather than relying on an empty
    # machine: other test sessions may have workers on the same broker.)
    from harness_site.celery import app

    with mock.patch.object(app.control, "ping", return_value=[]) as ping:
        response = admin_client.get("/healthz")
    ping.assert_called_once()
    body = response.json()
    assert body["redis"]["ok"] is True
    assert body["workers"]["ok"] is False
    assert body["workers"]["workers"] == []
    assert response.status_code == 503
    assert body["status"] == "degraded"


def test_healthz_with_redis_down_is_503_quickly(client: Client, settings: Any) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["redis"]["ok"] is False
    assert body["workers"]["ok"] is False
    assert body["database"]["ok"] is True
    assert elapsed < 5, f"/healthz took {elapsed:.1f}s with Redis down"


def test_healthz_with_redis_down_does_not_echo_the_redis_url(client: Client, settings: Any) -> None:
    settings.REDIS_URL = f"redis://:s3cret-pass@127.0.0.1:{_closed_port()}/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "s3cret-pass" not in response.content.decode()


def test_healthz_reports_a_broken_worker_ping_as_down(admin_client: Client) -> None:
    from harness_site.celery import app

    with mock.patch.object(app.control, "ping", side_effect=ConnectionError("boom")):
        response = admin_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"] == {"ok": False, "workers": [], "error": "ConnectionError"}


@pytest.mark.django_db(transaction=True)
def test_healthz_with_a_live_worker_is_200(
    celery_worker: Callable[..., Any], admin_client: Client
) -> None:
    worker = celery_worker(concurrency=1, name="health")
    response = admin_client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["workers"]["ok"] is True
    expected = worker.name.split("@")[0]
    assert any(name.startswith(expected) for name in body["workers"]["workers"])


def test_a_degraded_healthz_logs_one_warning_line_not_an_error(
    client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A probe during a Redis restart is expected, not a server error: one WARNING saying what is
    # down, and no django.request ERROR "Service Unavailable" line (nor a traceback).
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    with caplog.at_level("INFO"):
        assert client.get("/healthz").status_code == 503
    records = [r for r in caplog.records if r.levelno >= 30]
    assert [(r.name, r.levelname) for r in records] == [("runs.observability.health", "WARNING")]
    line = records[0].getMessage()
    assert "redis" in line and "\n" not in line and records[0].exc_info is None
