from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Start local receivers (real HTTP servers on 127.0.0.1); all stopped at teardown."""
    started: list[Receiver] = []

    def start(codes: list[int] | None = None, location: str = "") -> Receiver:
        server = Receiver(codes=codes or [200], location=location)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
