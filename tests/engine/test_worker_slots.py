"""A real worker advertises how many agents it runs at once, and withdraws it when it stops."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from harness_site import workers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _slots_of(hostname: str) -> int | None:
    workers.forget_cache()
    return workers.worker_slots().workers.get(hostname)


@pytest.mark.parametrize(("pool", "concurrency"), [("threads", 12), ("prefork", 2)])
def test_a_worker_advertises_its_pool_size_until_it_stops(
    celery_worker: Any, pool: str, concurrency: int
) -> None:
    worker = celery_worker(concurrency=concurrency, name=f"slots-{pool}", pool=pool)
    hostname = worker.name.replace("%h", os.uname().nodename)
    deadline = time.monotonic() + 10
    while _slots_of(hostname) != concurrency:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.1)
    worker.stop()
    assert _slots_of(hostname) is None
