"""`make run`'s supervisor: brings the stack up, and leaves nothing behind when it goes down."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness_site import devstack, localredis

ROOT = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    return raw.rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    # A process can exit between listing /proc and reading its cmdline.
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return {pid for pid in pids if _alive(pid)}


# --- stop_process (no Django needed) ----------------------------------------------------------


@linux_only
def test_stop_process_reaps_the_whole_process_group() -> None:
    proc = devstack._spawn(
        ["sh", "-c", "sleep 300 & sleep 300 & wait"], dict(os.environ), subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while len(_descendants(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    family = _descendants(proc.pid) | {proc.pid}
    assert len(family) == 3
    devstack.stop_process(proc, timeout=5)
    assert _wait_gone(family, 5) == set()


@linux_only
def test_stop_process_kills_what_ignores_sigterm() -> None:
    proc = devstack._spawn(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('ready', flush=True); time.sleep(300)",
        ],
        dict(os.environ),
        subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    assert devstack.stop_process(proc, timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    proc.stdout.close()


def test_worker_command_runs_celery_for_this_project() -> None:
    argv = devstack.worker_argv(concurrency=3)
    assert argv[1:6] == ["-m", "celery", "-A", "harness_site", "worker"]
    assert argv[argv.index("--concurrency") + 1] == "3"
    assert argv[argv.index("-n") + 1] == "harness@%h"


def test_web_command_never_times_out_websockets() -> None:
    argv = devstack.web_argv(8123)
    assert argv[1:3] == ["-m", "daphne"]
    assert argv[argv.index("--websocket_timeout") + 1] == "-1"
    assert argv[argv.index("-b") + 1] == "127.0.0.1"
    assert argv[argv.index("-p") + 1] == "8123"


def test_children_get_the_private_redis_url_when_none_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("HARNESS_PRIVATE_REDIS_PORT", "6999")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    env = devstack.child_env({"EXTRA": "1"})
    assert env["REDIS_URL"] == "redis://127.0.0.1:6999/0"
    assert env["HARNESS_DATA_DIR"] == str(tmp_path)
    assert env["EXTRA"] == "1"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/1")
    assert devstack.child_env()["REDIS_URL"] == "redis://elsewhere:6379/1"


# --- the whole stack --------------------------------------------------------------------------


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.web_port = _free_port()
        self.redis_port = _free_port()
        self.log = tmp_path / "devstack.log"
        env = {
            key: value
            for key, value in os.environ.items()
            # CI points these at shared services; this test is about the private defaults.
            if key not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
        }
        env.update(
            HARNESS_DATA_DIR=str(self.data_dir),
            HARNESS_PORT=str(self.web_port),
            HARNESS_PRIVATE_REDIS_PORT=str(self.redis_port),
            CELERY_WORKER_CONCURRENCY="1",
            HARNESS_ADMIN_PASSWORD="",
        )
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness_site.devstack"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "is ready: http://127.0.0.1:" in self.output():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"devstack exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.25)
        pytest.fail(f"devstack not ready after {timeout} s:\n{self.output()[-5000:]}")

    def force_cleanup(self, pids: set[int]) -> None:
        for pid in pids | {self.proc.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    try:
        yield running
    finally:
        # Only after a failed assertion: never leave a stack running behind the suite.
        if running.proc.poll() is None:
            running.force_cleanup(_descendants(running.proc.pid))


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@linux_only
@pytest.mark.integration
def test_ctrl_c_stops_every_process_and_exits_zero(stack: Stack) -> None:
    stack.wait_ready()
    assert _health(stack.web_port) == 200
    output = stack.output()
    assert "[redis]" in output
    assert "[web]" in output
    assert "[worker]" in output
    password_file = stack.data_dir / "admin-password.txt"
    assert f"the password is in {password_file}" in output
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text().strip() not in output

    family = _descendants(stack.proc.pid)
    assert len(family) >= 3  # redis, daphne and celery (its threads pool forks no child)

    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=40) == 0, stack.output()[-3000:]
    assert _wait_gone(family, 5) == set(), stack.output()[-3000:]
    assert devstack._port_is_free(stack.web_port)
    assert localredis.ping(stack.redis_port) is False


@linux_only
@pytest.mark.integration
def test_a_crashed_child_is_started_again_and_too_many_crashes_stop_the_stack(
    stack: Stack,
) -> None:
    stack.wait_ready()

    def web_pid() -> int:
        family = _descendants(stack.proc.pid)
        return next(p for p in family if b"daphne" in _cmdline(p))

    first = web_pid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "starting web again" not in stack.output():
        time.sleep(0.2)
    assert "web exited unexpectedly with code -9; starting it again in 1 s" in stack.output()

    def answers() -> bool:
        try:
            return _health(stack.web_port) == 200
        except urllib.error.URLError:  # not listening yet
            return False

    while time.monotonic() < deadline and not answers():
        time.sleep(0.5)
    assert answers() and web_pid() != first
    assert stack.proc.poll() is None  # the stack stayed up

    for _ in range(devstack.RESTART_LIMIT - 1):  # crash after crash: it gives up, with an error
        pid = web_pid()
        os.kill(pid, signal.SIGKILL)
        while time.monotonic() < deadline + 120 and stack.proc.poll() is None:
            try:
                if web_pid() != pid:
                    break
            except StopIteration:
                pass
            time.sleep(0.2)
    family = _descendants(stack.proc.pid)
    assert stack.proc.wait(timeout=60) != 0
    assert f"{devstack.RESTART_LIMIT} times within" in stack.output()
    assert _wait_gone(family, 5) == set(), stack.output()[-3000:]
