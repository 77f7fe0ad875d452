"""Group commit of agents' successes in a worker process.

Agents finish on many threads at once. Instead of each committing its own outcome transaction
(and queueing on the run's row lock and the database's commit flush behind the others), an
agent hands its result to this process's committer thread and waits: the committer takes
whatever is waiting — one agent when the worker is quiet, dozens when it is busy — and stores
them in one transaction (``completion.complete_tasks``). Each agent's thread returns, and Celery
acknowledges its message, only after that transaction committed: at-least-once is unchanged,
and a worker killed mid-batch loses no agent (their messages come back; their stored calls are
replayed, not paid again).

If a batch fails (a deadlock victim, a dropped connection, one agent's bad output), nothing of
it was stored: each waiting agent then stores its own outcome on its own thread, exactly as
without the committer, so one bad agent never fails the others.

Started by Celery worker processes (``runs.tasks``); everywhere else ``complete`` stores inline,
in the caller's own connection and transaction, as a test's rollback expects.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from django.conf import settings
from django.db import transaction
from opentelemetry.context import get_current

from agents.contract import AgentResult
from agents.playbooks import Playbook
from runs.actions.completion import Completion, complete_tasks
from runs.models import Task
from runs.observability.span_store import release_connection

logger = logging.getLogger(__name__)


class _BatchFailed(Exception):
    """The batch this agent was in did not commit: store the agent on its own."""


class GroupCommitter:
    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._waiting: queue.SimpleQueue[tuple[Completion, Future[bool]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
        self._thread.start()
        self.batches = 0
        self.agents = 0

    def complete(self, item: Completion) -> bool:
        # Back to the pool while waiting: a hundred agents each holding a pooled connection would
        # leave none for the committer (the pool is smaller than the thread count).
        release_connection()
        done: Future[bool] = Future()
        self._waiting.put((item, done))
        try:
            return done.result()
        except _BatchFailed:
            return complete_tasks([item])[0]

    def _loop(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(batch)
            except Exception:  # the committer must outlive any one batch
                logger.warning("group commit: a batch failed", exc_info=True)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(_BatchFailed())

    def _commit(self, batch: list[tuple[Completion, Future[bool]]]) -> None:
        try:
            won = complete_tasks([item for item, _ in batch])
        except Exception as exc:  # each agent then stores its own outcome (module docstring)
            logger.info("a batch of %d outcomes did not commit (%s)", len(batch), exc)
            for _, done in batch:
                done.set_exception(_BatchFailed())
            return
        finally:
            release_connection()  # back to the pool between batches; never raises
        self.batches += 1
        self.agents += len(batch)
        for (_, done), result in zip(batch, won, strict=True):
            done.set_result(result)


_committer: GroupCommitter | None = None
_starting = threading.Lock()


def start() -> None:
    """Turn group commit on for this process (a Celery worker's threads pool)."""
    global _committer
    with _starting:
        if _committer is None and settings.HARNESS_GROUP_COMMIT_MAX > 1:
            _committer = GroupCommitter(settings.HARNESS_GROUP_COMMIT_MAX)


def complete(task: Task, result: AgentResult, playbook: Playbook) -> bool:
    """Store an agent's success; True if this delivery completed it (see ``complete_tasks``).
    Batched with other agents' when the committer runs and the caller is in no transaction of
    its own (a caller's open transaction must see its own writes)."""
    item = Completion(task, result, playbook, get_current())
    if _committer is None or transaction.get_connection().in_atomic_block:
        return complete_tasks([item])[0]
    return _committer.complete(item)
