"""The next agents' messages go to the broker in one round trip (one Redis pipeline for all of
them, each message still a Celery message of its own), and when that batch fails each is sent
alone: none is lost."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from kombu.exceptions import BatchPublishError  # type: ignore[attr-defined]  # kombu 5.7, newer than its stubs
from kombu.transport import redis as kombu_redis

from harness_site.celery import app
from runs.actions import enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def _queue() -> Any:
    with app.connection_for_write() as conn:
        return conn.default_channel.client  # type: ignore[attr-defined]  # the Redis channel's


@pytest.fixture
def broker_queue() -> Iterator[Any]:
    """This session's queue on the real broker, empty before and after (no worker reads it)."""
    client = _queue()
    client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    yield client
    client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)


def _agents_queued(client: Any) -> list[int]:
    ids = []
    for raw in client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == enqueue.RUN_AGENT
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        ids.extend(args)
    return sorted(ids)


def _flushes(monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[int]:
    """The size of each pipeline the producer batch sends (failing them all when ``fail``)."""
    sizes: list[int] = []
    batch = kombu_redis.PublishBatch  # type: ignore[attr-defined]  # kombu 5.7, newer than its stubs
    real = batch.flush

    def flush(self: Any) -> None:
        sizes.append(self._buffered)
        if fail and self._buffered:
            self.discard()
            raise BatchPublishError("the pipeline broke")
        real(self)

    monkeypatch.setattr(batch, "flush", flush)
    return sizes


def test_agents_freed_together_are_published_in_one_round_trip(
    broker_queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _flushes(monkeypatch)
    ids = list(range(900_001, 900_041))
    with transaction.atomic():
        enqueue.agents_after_commit(ids)
        assert _agents_queued(broker_queue) == []  # nothing before the commit

    assert sizes == [len(ids)]
    assert _agents_queued(broker_queue) == ids


def test_a_failed_batch_is_sent_again_message_by_message(
    broker_queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _flushes(monkeypatch, fail=True)
    ids = list(range(900_101, 900_111))
    with transaction.atomic():
        enqueue.agents_after_commit(ids)

    assert sizes[0] == len(ids)
    assert _agents_queued(broker_queue) == ids
