"""The `make run` supervisor: one command that brings up the whole local stack.

    python -m harness_site.devstack

Order: data dir, private Redis (only when REDIS_URL is unset), migrate, setup_roles,
ensure_admin, then daphne and one Celery worker, their output prefixed per process. Ctrl-C or
SIGTERM stops every child (SIGTERM to its process group, SIGKILL after a grace period), then the
private Redis, and exits 0 with nothing left running. A web or worker process that dies on its
own is started again after a growing pause (1, 2, 4 … 30 s: a worker killed by a Redis restart
comes back once Redis does); one that dies RESTART_LIMIT times within RESTART_WINDOW_S takes the
stack down with a non-zero exit, because a dashboard without its worker (or the reverse) only
looks alive. The private Redis dying always stops the stack.

Every child runs in its own session so a terminal Ctrl-C reaches only this supervisor, which
then stops things in order (web and worker before the Redis they use).

Like localredis, this module never imports Django settings (REDIS_URL has to be decided before
settings are read); it reads the environment through harness_site.env, as settings do.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from harness_site import env, localredis

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 120.0
DEGRADED_GRACE_SECONDS = 30.0

_print_lock = threading.Lock()
# Pids of children started here as process-group leaders: after one is reaped its group can no
# longer be looked up, yet pool processes it forked may still be in it.
_GROUP_LEADERS: set[int] = set()


class DevstackError(RuntimeError):
    """A configuration or startup problem worth one clear line instead of a traceback."""


# --- environment -------------------------------------------------------------------------------


# Read through harness_site.env, the same readings settings make (a bad value is a ConfigError).
def data_dir() -> Path:
    return env.data_dir(REPO_ROOT)


def web_port() -> int:
    return env.web_port()


def worker_concurrency() -> int:
    return env.worker_concurrency()


def worker_pool() -> str:
    return env.worker_pool()


def child_env(extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every child gets: ours, plus the decisions settings must agree with."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")
    env["HARNESS_DATA_DIR"] = str(data_dir())
    # Children write through a pipe; unbuffered keeps their lines in real time and in order.
    env["PYTHONUNBUFFERED"] = "1"
    if localredis.private_redis_wanted():
        env["REDIS_URL"] = localredis.private_redis_url()
    if extra_env:
        env.update(extra_env)
    return env


# --- processes ---------------------------------------------------------------------------------


def _spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    output: int | IO[bytes] | None,
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: S603 - argv built here, no shell
        list(argv),
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        # Own session and process group: signals from the terminal stay with the supervisor,
        # and stop_process can reach the worker's pool children through the group.
        start_new_session=True,
    )
    _GROUP_LEADERS.add(proc.pid)
    return proc


def worker_argv(
    name: str = "harness@%h", concurrency: int | None = None, pool: str | None = None
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "harness_site",
        "worker",
        "-l",
        "INFO",
        "--pool",
        pool or worker_pool(),
        "--concurrency",
        str(concurrency if concurrency is not None else worker_concurrency()),
        "-n",
        name,
    ]


def web_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        # Daphne's default closes idle websockets after 24 h with code 1000, which htmx's ws
        # extension treats as final and never reconnects.
        "--websocket_timeout",
        "-1",
        "harness_site.asgi:application",
    ]


def start_worker(
    extra_env: Mapping[str, str] | None = None,
    *,
    output: int | IO[bytes] | None = None,
    name: str = "harness@%h",
    concurrency: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a Celery worker for this project in its own process group.

    ``output`` is where its stdout+stderr go (subprocess.PIPE, a file, DEVNULL). By default they
    are appended to <data dir>/logs/worker.log, so callers that print machine-readable output
    (launch_run --json) keep a clean stdout. Stop it with stop_process.
    """
    if output is not None:
        return _spawn(worker_argv(name, concurrency), child_env(extra_env), output)
    log_dir = data_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "worker.log", "ab") as log:
        # The child holds its own copy of the descriptor; ours can close right away.
        return _spawn(worker_argv(name, concurrency), child_env(extra_env), log)


def start_web(port: int, *, output: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start daphne on 127.0.0.1:``port`` in its own process group; output as for start_worker
    (by default appended to <data dir>/logs/web.log). Stop it with stop_process."""
    if output is not None:
        return _spawn(web_argv(port), child_env(), output)
    log_dir = data_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "web.log", "ab") as log:
        return _spawn(web_argv(port), child_env(), log)


def web_answers(port: int) -> bool:
    """True once /healthz answers at all (200 or 503: the server is up)."""
    return _probe_health(port) is not None


def stop_process(p: subprocess.Popen[bytes], timeout: float = STOP_GRACE_SECONDS) -> int | None:
    """SIGTERM the process group of ``p``, wait up to ``timeout``, then SIGKILL what is left.

    Works for children started with their own process group (everything started here); for
    any other Popen it signals the process alone. Returns the exit code.
    """
    group = _own_group(p)
    if p.poll() is None:
        _signal(p, group, signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal(p, group, signal.SIGKILL)
            p.wait()
    if group is not None:
        # Pool children that outlived their parent still hold the group: nothing may linger.
        _signal(p, group, signal.SIGKILL)
    return p.returncode


def _own_group(p: subprocess.Popen[bytes]) -> int | None:
    if p.pid in _GROUP_LEADERS:
        return p.pid
    if p.poll() is not None:
        # Reaped, so its group cannot be asked for; signal nothing rather than guess.
        return None
    try:
        return p.pid if os.getpgid(p.pid) == p.pid else None
    except ProcessLookupError:
        return None


def _signal(p: subprocess.Popen[bytes], group: int | None, sig: signal.Signals) -> None:
    try:
        if group is not None:
            os.killpg(group, sig)
        elif p.poll() is None:
            p.send_signal(sig)
    except ProcessLookupError:
        pass


def _say(prefix: str, text: str) -> None:
    with _print_lock:
        sys.stdout.write(f"[{prefix}] {text}\n")
        sys.stdout.flush()


def _pump(prefix: str, stream: IO[bytes]) -> None:
    """Copy a child's output line by line, prefixed, until it closes its end."""
    with stream:
        for raw in iter(stream.readline, b""):
            _say(prefix, raw.decode(errors="replace").rstrip("\r\n"))


def _follow(prefix: str, path: Path, start: int, stop: threading.Event) -> None:
    """tail -f for the private Redis log (redis-server writes to its logfile, not stdout)."""
    position = start
    while not stop.is_set():
        try:
            with open(path, "rb") as fh:
                fh.seek(position)
                chunk = fh.read()
        except OSError:
            chunk = b""
        if chunk:
            complete, _, _rest = chunk.rpartition(b"\n")
            if complete:
                position += len(complete) + 1
                for line in complete.split(b"\n"):
                    _say(prefix, line.decode(errors="replace"))
        stop.wait(0.5)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As daphne binds: connections left in TIME_WAIT by a previous run must not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _probe_health(port: int) -> int | None:
    """HTTP status of /healthz, or None when the web server does not answer yet.

    The timeout is generous because /healthz itself waits up to a second for Celery pings.
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


# --- the supervisor ----------------------------------------------------------------------------


RESTART_LIMIT = 5
RESTART_WINDOW_S = 300.0
RESTART_MAX_PAUSE_S = 30.0


class Supervisor:
    def __init__(self) -> None:
        self.data_dir = data_dir()
        self.port = web_port()
        self.concurrency = worker_concurrency()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.pumps: list[threading.Thread] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_log_stop = threading.Event()
        self.stop_reason: str | None = None
        self.never_ready = False
        self.commands: dict[str, tuple[Sequence[str], Mapping[str, str]]] = {}
        self.crashes: dict[str, list[float]] = {}
        self.restart_at: dict[str, float] = {}

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only note it: the main loop stops things in order; raising here could interrupt a
        # Popen half-way and leak a child.
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            return self._run()
        except (DevstackError, env.ConfigError, localredis.PrivateRedisError) as exc:
            _say("harness", f"error: {exc}")
            return 1
        finally:
            self._shutdown()

    def _run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not _port_is_free(self.port):
            raise DevstackError(
                f"port {self.port} on 127.0.0.1 is already in use (another `make run`?); "
                "stop it or set HARNESS_PORT"
            )
        env = child_env()
        if localredis.private_redis_wanted():
            self._start_private_redis()
        else:
            _say("harness", "using REDIS_URL from the environment")

        for step in (["migrate", "--noinput"], ["setup_roles"], ["ensure_admin"]):
            code = self._run_step([sys.executable, "manage.py", *step], env)
            if self.stop_reason:
                return 0
            if code != 0:
                _say("harness", f"`manage.py {' '.join(step)}` failed with exit code {code}")
                return 1

        self._start("web", web_argv(self.port), env)
        self._start("worker", worker_argv(concurrency=self.concurrency), env)
        return self._watch()

    def _start_private_redis(self) -> None:
        port = localredis.private_redis_port()
        logfile = self.data_dir / "redis" / f"redis-{port}.log"
        start = logfile.stat().st_size if logfile.exists() else 0
        self.redis = localredis.ensure_private_redis(self.data_dir, port)
        if self.redis is None:
            # Another supervisor's (or the user's) Redis: share it, and leave it running at exit.
            _say("redis", f"reusing the Redis already answering on 127.0.0.1:{port}")
            return
        _say("redis", f"private redis-server pid {self.redis.pid} on 127.0.0.1:{port}")
        follower = threading.Thread(
            target=_follow,
            args=("redis", logfile, start, self.redis_log_stop),
            name="follow-redis",
            daemon=True,
        )
        follower.start()
        self.pumps.append(follower)

    def _start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.commands[name] = (argv, env)
        proc = _spawn(argv, env, subprocess.PIPE)
        self.children[name] = proc
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(name, proc.stdout), name=f"pump-{name}")
        pump.daemon = True
        pump.start()
        self.pumps.append(pump)

    def _run_step(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        self._start("setup", argv, env)
        proc = self.children["setup"]
        while proc.poll() is None and not self.stop_reason:
            time.sleep(0.1)
        if self.stop_reason:
            stop_process(proc)
        del self.children["setup"]
        return proc.wait()

    def _watch(self) -> int:
        # Probing blocks for up to seconds per try: a thread keeps Ctrl-C and crash detection
        # immediate.
        prober = threading.Thread(target=self._await_ready, name="await-ready", daemon=True)
        prober.start()
        while True:
            if self.stop_reason:
                _say("harness", f"{self.stop_reason} received, stopping")
                return 0
            for name, proc in list(self.children.items()):
                if name in self.restart_at or proc.poll() is None:
                    continue
                if not self._schedule_restart(name, proc.returncode):
                    return 1
            for name, when in list(self.restart_at.items()):
                if time.monotonic() >= when:
                    del self.restart_at[name]
                    _say("harness", f"starting {name} again")
                    self._start(name, *self.commands[name])
            if self.redis is not None and self.redis.poll() is not None:
                _say("harness", f"private Redis exited unexpectedly ({self.redis.returncode})")
                return 1
            if self.never_ready:
                _say("harness", f"web did not answer within {READY_TIMEOUT_SECONDS:.0f} s")
                return 1
            time.sleep(0.2)

    def _schedule_restart(self, name: str, code: int | None) -> bool:
        """Note a crash of ``name``; False when it crashed too often to try again."""
        now = time.monotonic()
        recent = [t for t in self.crashes.get(name, []) if now - t < RESTART_WINDOW_S] + [now]
        self.crashes[name] = recent
        what = f"{name} exited unexpectedly with code {code}"
        if len(recent) >= RESTART_LIMIT:
            window = f"{len(recent)} times within {RESTART_WINDOW_S:.0f} s"
            _say("harness", f"{what}, {window}; stopping the rest (see its output above)")
            return False
        pause = min(RESTART_MAX_PAUSE_S, 2.0 ** (len(recent) - 1))
        _say("harness", f"{what}; starting it again in {pause:.0f} s (crash {len(recent)})")
        self.restart_at[name] = now + pause
        return True

    def _await_ready(self) -> None:
        """Announce once /healthz says 200 (database, Redis and the worker all answer).

        A web server that answers but stays degraded is announced anyway after
        DEGRADED_GRACE_SECONDS, with a pointer to /healthz, so the user is not left guessing.
        """
        started = time.monotonic()
        while not self.stop_reason:
            status = _probe_health(self.port)
            waited = time.monotonic() - started
            if status == 200:
                self._announce()
                return
            if status is not None and waited > DEGRADED_GRACE_SECONDS:
                self._announce()
                _say("harness", f"warning: /healthz answers {status}; see it for what is down")
                return
            if status is None and waited > READY_TIMEOUT_SECONDS:
                self.never_ready = True
                return
            time.sleep(0.5)

    def _announce(self) -> None:
        username = os.environ.get("HARNESS_ADMIN_USERNAME", "").strip() or "admin"
        password_file = self.data_dir / "admin-password.txt"
        if password_file.exists():
            where = f"the password is in {password_file}"
        elif os.environ.get("HARNESS_ADMIN_PASSWORD"):
            where = "the password is the HARNESS_ADMIN_PASSWORD you set"
        else:
            where = "the account existed before; its password was not changed"
        _say("harness", f"Agent Harness is ready: http://127.0.0.1:{self.port}/")
        _say("harness", f"Sign in as {username!r}; {where}. Press Ctrl-C to stop.")

    def _shutdown(self) -> None:
        # A second Ctrl-C must not cut the cleanup short and leave orphans behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Web and worker in parallel: each gets the full grace period, not a share of it.
        stoppers = [
            threading.Thread(target=stop_process, args=(proc,), name=f"stop-{name}")
            for name, proc in self.children.items()
        ]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        if self.redis is not None:
            localredis.stop_private_redis(self.redis)
            _say("redis", "private Redis stopped")
        self.redis_log_stop.set()
        for pump in self.pumps:
            pump.join(timeout=2)
        self.children.clear()


def main() -> int:
    try:
        supervisor = Supervisor()
    except (DevstackError, env.ConfigError) as exc:
        _say("harness", f"error: {exc}")
        return 2
    code = supervisor.run()
    _say("harness", "stopped" if code == 0 else f"stopped with exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
