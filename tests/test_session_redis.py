"""A test session stops every process it started: the private Redis it started for itself is
gone when the session ends, unless another session still uses it, and then the last one out
stops it. A Redis no test session started is never stopped by one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness_site import localredis
from tests.conftest import ROOT

# A session of its own: the suite's session fixture, and one test that uses its Redis.
CONFTEST = "from tests.conftest import _redis_for_tests  # noqa: F401\n"
PROBE = """
from harness_site.celery import app
from harness_site.redis_client import get_redis


def test_the_session_uses_its_redis_as_the_suite_does():
    assert get_redis().ping()
    # Like the engine tests: the broker's pooled connections stay open until the process ends.
    app.control.inspect(timeout=0.2).active_queues()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_servers_in(data_dir: Path) -> list[psutil.Process]:
    """redis-server processes working in ``data_dir`` (the private Redis runs in its redis/)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "redis-server" and Path(proc.cwd()).is_relative_to(data_dir):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_a_test_session_leaves_no_redis_server_behind(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"REDIS_URL", "HARNESS_TEST_SESSION", "DATABASE_URL", "PYTEST_ADDOPTS"}
    }
    env.update(HARNESS_DATA_DIR=str(data_dir), HARNESS_PRIVATE_REDIS_PORT=str(port))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "-q",
            str(tmp_path / "test_probe.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    left = redis_servers_in(data_dir)
    for proc in left:  # a failing check must not leave it running either
        proc.terminate()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # It did start a private Redis of its own (its log is there), and stopped it.
    assert (data_dir / "redis" / f"redis-{port}.log").exists()
    assert left == []
    assert localredis.ping(port) is False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    proc = localredis.ensure_private_redis(tmp_path, port)
    assert proc is not None
    yield port, proc
    localredis.stop_private_redis(proc)


@pytest.fixture
def other_session() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing for another test session."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_last_session_out_stops_the_redis_one_of_them_started(
    server: tuple[int, subprocess.Popen[bytes]], other_session: subprocess.Popen[bytes]
) -> None:
    port, proc = server
    localredis.join_private_redis(port, started=True)
    localredis.join_private_redis(port, started=False, pid=other_session.pid)
    # The session that started it ends first: the other one still uses it.
    assert localredis.leave_private_redis(port, proc) is False
    assert localredis.ping(port) is True and proc.poll() is None
    # The other one ends too: the last one out stops it, though it did not start it.
    other_session.kill()
    other_session.wait()
    assert localredis.leave_private_redis(port, None, pid=other_session.pid) is True
    assert localredis.ping(port) is False
    assert proc.wait(timeout=10) is not None


def test_sessions_that_died_without_leaving_do_not_keep_it_running(
    server: tuple[int, subprocess.Popen[bytes]], other_session: subprocess.Popen[bytes]
) -> None:
    port, proc = server
    localredis.join_private_redis(port, started=True)
    localredis.join_private_redis(port, started=False, pid=other_session.pid)
    other_session.kill()  # killed outright: it never leaves
    other_session.wait()
    assert localredis.leave_private_redis(port, proc) is True
    assert proc.poll() is not None


def test_a_redis_no_session_started_is_never_stopped_by_one(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, proc = server  # started by someone else (a session of older code, a person)
    localredis.join_private_redis(port, started=False)
    assert localredis.leave_private_redis(port, None) is False
    assert localredis.ping(port) is True and proc.poll() is None
