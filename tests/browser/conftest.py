"""Browser tests: Debian's Chromium driven by pytest-playwright against a real daphne process
(sharing the test database through ``subprocess_env``), real Celery workers and real Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from tests.conftest import ROOT, subprocess_env

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "pw-for-tests-only"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} missing: apt-get install -y chromium")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _database_before_the_browser(django_db_setup: Any) -> None:
    """The test database is created before Playwright starts its event loop: created after, in
    a session whose first test is a browser test, Django refuses the blocking calls."""


@pytest.fixture(autouse=True)
def _allow_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sync Playwright API runs an event loop in the test's thread; the ORM calls the tests
    # make around it are ordinary blocking calls, which Django would otherwise refuse there.
    # Only for browser tests: the variable must not leak into the rest of the session.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Playwright's own browser download does not work offline: use the system Chromium.
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daphne:
    """`daphne` serving the real ASGI app; ``kill`` + ``start`` simulate a server restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = settings.DATA_DIR / f"daphne-{os.getpid()}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        argv = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            # Daphne closes idle websockets after 24 h with 1000, which htmx never retries.
            "--websocket_timeout",
            "-1",
            "harness_site.asgi:application",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=subprocess_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne died at start:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        # Stopped before raising: the fixture's teardown never runs when its set-up fails, and a
        # daphne left answering later would hold its port and a share of a loaded machine.
        self.kill()
        raise RuntimeError(f"daphne did not answer within {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no close frames, exactly like a crash or a network drop (browser sees 1006)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def daphne(transactional_db: Any) -> Iterator[Daphne]:
    server = Daphne(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sign_in(daphne: Daphne) -> Callable[[Any, User], None]:
    def login(page: Any, user: User) -> None:
        page.goto(f"{daphne.url}/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{daphne.url}/")

    return login


@pytest.fixture
def screenshot_dir() -> Path | None:
    """Set by scripts/screenshots.py: where the browser tests save the README's screenshots."""
    value = os.environ.get("HARNESS_SCREENSHOTS_DIR")
    if not value:
        return None
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path
