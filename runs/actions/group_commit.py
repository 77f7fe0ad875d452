"""Group commit of agents' successes, and of their stored calls, in a worker process.

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

An agent's claim (``claims.claim_agents``: its first read too), and its model and tool calls,
go the same way through committer threads of their own
(``ClaimCommitter``; ``CallCommitter``, ``stored_calls.store_calls``): the agent waits until
its claim or its call is committed, so a second delivery still loses the claim and a redelivered
agent still replays its call (never paying twice), but the agents that start or call together
share one transaction, one read of their rows and one seq allocation of the run instead of one
each.

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
from runs.actions.claims import Claim, claim_agents
from runs.actions.completion import Completion, complete_tasks
from runs.actions.stored_calls import StoredCall, store_calls
from runs.models import Task
from runs.observability.span_store import release_connection

logger = logging.getLogger(__name__)


class _BatchFailed(Exception):
    """The batch this agent was in did not commit: store the agent on its own."""


class _Committer[T, R]:
    """A committer thread: callers hand it items and wait; it stores whatever is waiting at
    that moment in one call of ``_store`` (one transaction), and answers each caller after that
    commit. A batch that fails answers each caller with ``_BatchFailed``."""

    name = "group-commit"

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._waiting: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        self.batches = 0
        self.agents = 0

    def _store(self, items: list[T]) -> list[R]:
        raise NotImplementedError

    def _wait(self, item: T) -> R:
        # Back to the pool while waiting: a hundred agents each holding a pooled connection would
        # leave none for the committer (the pool is smaller than the thread count).
        release_connection()
        done: Future[R] = Future()
        self._waiting.put((item, done))
        return done.result()

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
                logger.warning("%s: a batch failed", self.name, exc_info=True)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(_BatchFailed())

    def _commit(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._store([item for item, _ in batch])
        except Exception as exc:  # each agent then stores its own (module docstring)
            logger.info("a batch of %d from %s did not commit (%s)", len(batch), self.name, exc)
            for _, done in batch:
                done.set_exception(_BatchFailed())
            return
        finally:
            release_connection()  # back to the pool between batches; never raises
        self.batches += 1
        self.agents += len(batch)
        for (_, done), result in zip(batch, results, strict=True):
            done.set_result(result)


class GroupCommitter(_Committer[Completion, bool]):
    """Agents' successes (``completion.complete_tasks``)."""

    def _store(self, items: list[Completion]) -> list[bool]:
        return complete_tasks(items)

    def complete(self, item: Completion) -> bool:
        try:
            return self._wait(item)
        except _BatchFailed:
            return complete_tasks([item])[0]


class ClaimCommitter(_Committer[int, Claim]):
    """Agents' claims (``claims.claim_agents``): the agents a worker starts together are read,
    and take the run's lock and its seqs, once for all of them."""

    name = "claim-commit"

    def _store(self, items: list[int]) -> list[Claim]:
        return claim_agents(items)


class CallCommitter(_Committer[StoredCall, bool]):
    """Agents' stored model and tool calls (``stored_calls.store_calls``): the call is durable
    before its agent goes on, as when it stores it alone, but a hundred agents' calls share one
    transaction, one seq allocation per run and one INSERT of steps and of events."""

    name = "call-commit"

    def _store(self, items: list[StoredCall]) -> list[bool]:
        store_calls(items)
        return [True] * len(items)


_committer: GroupCommitter | None = None
_calls: CallCommitter | None = None
_claims: ClaimCommitter | None = None
_starting = threading.Lock()


def start() -> None:
    """Turn group commit on for this process (a Celery worker's threads pool)."""
    global _committer, _calls, _claims
    with _starting:
        if _committer is None and settings.HARNESS_GROUP_COMMIT_MAX > 1:
            _committer = GroupCommitter(settings.HARNESS_GROUP_COMMIT_MAX)
            _calls = CallCommitter(settings.HARNESS_GROUP_COMMIT_MAX)
            _claims = ClaimCommitter(settings.HARNESS_GROUP_COMMIT_MAX)


def complete(task: Task, result: AgentResult, playbook: Playbook) -> bool:
    """Store an agent's success; True if this delivery completed it (see ``complete_tasks``).
    Batched with other agents' when the committer runs and the caller is in no transaction of
    its own (a caller's open transaction must see its own writes)."""
    item = Completion(task, result, playbook, get_current())
    if _committer is None or transaction.get_connection().in_atomic_block:
        return complete_tasks([item])[0]
    return _committer.complete(item)


def claim(task_id: int) -> Claim:
    """``claims.claim_agents`` for one delivered agent, with the claims of other agents that
    start meanwhile in one transaction when this process has a committer (a failed batch: each
    claims alone)."""
    if _claims is None or transaction.get_connection().in_atomic_block:
        return claim_agents([task_id])[0]
    try:
        return _claims._wait(task_id)
    except _BatchFailed:
        return claim_agents([task_id])[0]


def store_call(item: StoredCall) -> bool:
    """Store an agent's call with other agents' calls in one transaction; True once committed.
    False when the caller must store it alone (no committer in this process, the caller is in a
    transaction of its own, or the batch failed: a duplicate delivery's step, for one)."""
    if _calls is None or transaction.get_connection().in_atomic_block:
        return False
    try:
        return _calls._wait(item)
    except _BatchFailed:
        return False
