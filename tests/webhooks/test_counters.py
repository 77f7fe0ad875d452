"""The Redis-backed counters /metrics reads: every process's adds arrive once."""

from __future__ import annotations

import os

import pytest

from runs.observability.counters import counters, read_counters

KEY = ("agent_completions", (("status", "test-fork"),))


@pytest.fixture(autouse=True)
def _clean() -> None:
    counters.flush()


def test_adds_reach_redis_on_flush() -> None:
    before = read_counters().get(KEY, 0)
    counters.add("agent_completions", 2, status="test-fork")
    counters.add("agent_completions", 0.5, status="test-fork")
    assert read_counters().get(KEY, 0) == before  # nothing sent before the flush
    counters.flush()
    assert read_counters()[KEY] == before + 2.5


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_sends_its_own_counts_and_not_its_parents() -> None:
    before = read_counters().get(KEY, 0)
    counters.add("agent_completions", 1, status="test-fork")  # not flushed yet
    pid = os.fork()
    if pid == 0:  # the child, as a prefork pool process
        try:
            counters.add("agent_completions", 10, status="test-fork")
            counters.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    counters.flush()
    assert read_counters()[KEY] == before + 11
