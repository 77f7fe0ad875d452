"""Shared fixtures: the real Redis (private one when REDIS_URL is unset), personas, and real
Celery worker processes that share the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from harness_site.localredis import ensure_private_redis, join_private_redis, leave_private_redis
from harness_site.redis_client import get_redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: pytest-playwright keeps a session-wide event loop running in the main
    thread once it starts, and async tests (consumers through the ASGI app) cannot run beside
    it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session", autouse=True)
def _redis_for_tests() -> Iterator[None]:
    """A real Redis for the whole session; stale test keys and queued messages are purged."""
    proc = None
    port = settings.HARNESS_PRIVATE_REDIS_PORT
    if settings.HARNESS_PRIVATE_REDIS:
        proc = ensure_private_redis(settings.DATA_DIR, port)
        join_private_redis(port, started=proc is not None)

    client = get_redis()
    stale = list(client.scan_iter(f"{settings.HARNESS_REDIS_PREFIX}*", count=1000))
    # Only this session's queue: kombu's unacked hash is shared by every session on this Redis.
    stale.append(settings.CELERY_TASK_DEFAULT_QUEUE)
    if stale:
        client.delete(*stale)
    yield
    if settings.HARNESS_PRIVATE_REDIS:
        # Stopped if no other session on this machine still uses it (the last one out stops
        # it); counting its connections cannot tell: this session's own pools stay open.
        leave_private_redis(port, proc)


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    from runs.roles import ensure_roles

    groups = ensure_roles()
    counter = iter(range(10_000))

    def make(role: str | None = None, **kwargs: Any) -> User:
        name = kwargs.pop("username", f"{role or 'nobody'}-{next(counter)}")
        user = User.objects.create_user(username=name, password="pw-for-tests-only", **kwargs)
        if role:
            user.groups.add(groups[role])
        return user

    return make


def _client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def viewer(make_user: Callable[..., User]) -> User:
    return make_user("viewer")


@pytest.fixture
def operator(make_user: Callable[..., User]) -> User:
    return make_user("operator")


@pytest.fixture
def reviewer(make_user: Callable[..., User]) -> User:
    return make_user("reviewer")


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    return _client_for(viewer)


@pytest.fixture
def operator_client(operator: User) -> Client:
    return _client_for(operator)


@pytest.fixture
def reviewer_client(reviewer: User) -> Client:
    return _client_for(reviewer)


def test_database_url() -> str:
    """DATABASE_URL for a subprocess (worker, daphne) that must see the test database."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "HARNESS_TESTING": "1",
            "HARNESS_TEST_SESSION": settings.TEST_SESSION,
            "HARNESS_DATA_DIR": str(settings.DATA_DIR),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class WorkerProcess:
    """A real `celery worker` subprocess on the test queue."""

    def __init__(
        self,
        concurrency: int = 4,
        name: str = "test",
        pool: str = "prefork",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h"
        self.log = settings.DATA_DIR / f"worker-{name}-{os.getpid()}.log"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "harness_site",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "-n",
            self.name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self.logfile = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=subprocess_env(**(env or {})),
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        from harness_site.celery import app

        deadline = time.monotonic() + timeout
        expected = self.name.replace("%h", os.uname().nodename)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker died at start:\n{self.tail()}")
            replies = app.control.ping(timeout=0.5, destination=[expected])
            if replies:
                return
        raise RuntimeError(f"worker did not answer within {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def children(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.logfile.close()


@pytest.fixture
def celery_worker(transactional_db: Any) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes; all are stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(
        concurrency: int = 4,
        name: str = "test",
        pool: str = "prefork",
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        worker = WorkerProcess(concurrency=concurrency, name=name, pool=pool, env=env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
