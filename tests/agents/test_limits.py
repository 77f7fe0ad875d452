"""Limits against a real Redis: threads and spawned processes race on the same keys.

Each test gets a unique key prefix and deletes its keys afterwards. Worker functions for
multiprocessing live at module level so the spawn context can import them.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from agents.budget import Budget, BudgetNotInitialized
from agents.limits import LeaseSemaphore, RateLimiter


def _settings_redis_url() -> str:
    from django.conf import settings

    return str(settings.REDIS_URL)


# The session's real Redis (the private one tests/conftest.py starts when REDIS_URL is unset).
# Exported so the processes these tests spawn use the same server without loading settings.
REDIS_URL = os.environ.get("TEST_REDIS_URL") or _settings_redis_url()
os.environ["TEST_REDIS_URL"] = REDIS_URL


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    conn.ping()  # no Redis is a failure, not a skip
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"test:limits:{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(match=f"{value}*"))
    if keys:
        client.delete(*keys)


def _spawn(target, args_list: list[tuple]) -> list:
    """Run ``target(queue, barrier, *args)`` in spawned processes; one result per process.

    Workers wait on the barrier after their (slow) start-up so that they really race.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(len(args_list))
    procs = [ctx.Process(target=target, args=(queue, barrier, *args)) for args in args_list]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
        assert proc.exitcode == 0
    return results


# ---------------------------------------------------------------------------- semaphore


def test_semaphore_threads_never_exceed_limit(client: redis.Redis, prefix: str) -> None:
    sem = LeaseSemaphore(client, "threads", limit=3, key_prefix=prefix)
    lock = threading.Lock()
    inside = 0
    max_inside = 0
    acquired = 0
    counts: list[int] = []

    def worker(n: int) -> None:
        nonlocal inside, max_inside, acquired
        holder = f"h{n}"
        for _ in range(15):
            while not sem.acquire(holder):
                time.sleep(0.001)
            with lock:
                inside += 1
                max_inside = max(max_inside, inside)
                acquired += 1
            # recorded, not asserted: a failing thread must still release, or the test hangs
            counts.append(sem.count())
            time.sleep(0.001)
            with lock:
                inside -= 1
            sem.release(holder)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert acquired == 20 * 15
    assert 2 <= max_inside <= 3
    assert max(counts) <= 3
    assert sem.count() == 0


def test_semaphore_expired_lease_is_reclaimed(client: redis.Redis, prefix: str) -> None:
    sem = LeaseSemaphore(client, "lease", limit=1, lease_seconds=0.2, key_prefix=prefix)
    assert sem.acquire("killed-worker")  # never releases: simulates SIGKILL
    assert not sem.acquire("other")
    time.sleep(0.3)
    assert sem.acquire("other")
    assert sem.holders() == ["other"]
    assert not sem.renew("killed-worker")  # its lease is gone for good
    assert sem.renew("other")


def test_semaphore_idempotent_acquire_release(client: redis.Redis, prefix: str) -> None:
    sem = LeaseSemaphore(client, "idem", limit=2, key_prefix=prefix)
    assert sem.acquire("a")
    assert sem.acquire("a")  # renews, does not take a second slot
    assert sem.count() == 1
    assert sem.acquire("b")
    assert not sem.acquire("c")
    assert sem.acquire("c", limit=3)  # per-call limit
    sem.release("a")
    sem.release("a")
    assert sorted(sem.holders()) == ["b", "c"]
    assert not sem.renew("a")
    key_ttl = client.pttl(sem.key)
    assert 0 < key_ttl <= 61_000  # the key dies with its longest lease


def _semaphore_proc(
    queue, barrier, url: str, prefix: str, name: str, limit: int, rounds: int
) -> None:
    conn = redis.Redis.from_url(url)
    sem = LeaseSemaphore(conn, name, limit=limit, key_prefix=prefix)
    holder = f"pid{os.getpid()}"
    inside_key = f"{prefix}inside"
    max_seen = 0
    barrier.wait(timeout=30)
    for _ in range(rounds):
        while not sem.acquire(holder):
            time.sleep(0.001)
        max_seen = max(max_seen, int(conn.incr(inside_key)))
        time.sleep(0.002)
        conn.decr(inside_key)
        sem.release(holder)
    queue.put(max_seen)


def test_semaphore_multiprocess_never_exceeds_limit(client: redis.Redis, prefix: str) -> None:
    results = _spawn(_semaphore_proc, [(REDIS_URL, prefix, "procs", 2, 40)] * 4)
    assert max(results) <= 2
    assert max(results) == 2  # processes did contend, so the bound was actually tested


# ---------------------------------------------------------------------------- budget


def _drain_budget(budget: Budget, seed: int, exact: bool) -> tuple[int, int, int]:
    """Reserve 0.01 USD / 100 tokens per call until refused; return successes and usage."""
    rng = random.Random(seed)
    successes, spent_micro, spent_tokens = 0, 0, 0
    for i in range(60):
        rid = f"{seed}:{i}"
        if not budget.reserve(rid, 0.01, 100):
            break
        successes += 1
        micro = 10_000 if exact else rng.randint(5_000, 10_000)
        tokens = 100 if exact else rng.randint(50, 100)
        budget.settle(rid, micro / 1_000_000, tokens)
        budget.settle(rid, micro / 1_000_000, tokens)  # a redelivered task settles again
        spent_micro += micro
        spent_tokens += tokens
    return successes, spent_micro, spent_tokens


def _budget_proc(queue, barrier, url: str, prefix: str, seed: int) -> None:
    conn = redis.Redis.from_url(url)
    barrier.wait(timeout=30)
    exact = _drain_budget(Budget(conn, "exact", key_prefix=prefix), seed, exact=True)
    barrier.wait(timeout=30)
    randomized = _drain_budget(Budget(conn, "rand", key_prefix=prefix), seed, exact=False)
    queue.put((exact, randomized))


def test_budget_is_never_exceeded_by_parallel_workers(client: redis.Redis, prefix: str) -> None:
    exact, rand = (
        Budget(client, "exact", key_prefix=prefix),
        Budget(client, "rand", key_prefix=prefix),
    )
    exact.init(1.0, None)
    rand.init(1.0, None)
    results = _spawn(_budget_proc, [(REDIS_URL, prefix, seed) for seed in range(8)])

    # actual == reserved: exactly limit / reservation calls may succeed, across all workers
    assert sum(r[0][0] for r in results) == 100
    state = exact.state()
    assert (state.spent_usd, state.spent_tokens) == (1.0, 100 * 100)
    assert state.reserved_usd == 0 and state.reserved_tokens == 0

    # random actual <= reserved: never over, every settled micro-dollar accounted for once
    state = rand.state()
    spent_micro = round(state.spent_usd * 1_000_000)
    assert spent_micro == sum(r[1][1] for r in results)
    assert state.spent_tokens == sum(r[1][2] for r in results)
    assert spent_micro <= 1_000_000
    # a worker is refused only when spent + <=7 others' reservations + its own left no room
    assert spent_micro > 1_000_000 - 8 * 10_000
    assert sum(r[1][0] for r in results) > 100
    assert state.reserved_usd == 0


def test_budget_idempotent_reserve_and_settle(client: redis.Redis, prefix: str) -> None:
    budget = Budget(client, "b7", key_prefix=prefix)
    budget.init(0.05, None)
    budget.init(99.0, 5)  # second init changes nothing
    assert budget.reserve("a", 0.02, 10)
    assert budget.reserve("a", 0.02, 10)
    assert budget.state().reserved_usd == 0.02
    assert budget.reserve("b", 0.03, 10)
    assert not budget.reserve("c", 0.000001, 0)  # full: 0.05 reserved
    budget.settle("a", 0.015, 8)
    budget.settle("a", 0.015, 8)
    state = budget.state()
    assert (state.spent_usd, state.spent_tokens) == (0.015, 8)
    assert (state.reserved_usd, state.reserved_tokens) == (0.03, 10)
    assert budget.reserve("a", 0.02, 10)  # already settled: True, reserves nothing
    assert budget.state().reserved_usd == 0.03
    budget.release("b")
    budget.release("b")
    assert budget.state().reserved_usd == 0
    budget.settle("unknown", 0.001, 1)  # never reserved: usage still counted once
    budget.settle("unknown", 0.001, 1)
    state = budget.state()
    assert (state.spent_usd, state.spent_tokens) == (0.016, 9)
    assert not budget.reserve("x", 0.035, 0)  # 0.016 spent + 0.035 > 0.05
    assert budget.reserve("x", 0.034, 0)
    budget.release("x")
    # settle never clamps: an undersized reservation is recorded honestly
    assert budget.reserve("d", 0.001, 1)
    budget.settle("d", 0.05, 1)
    assert budget.state().spent_usd == 0.066
    assert not budget.reserve("e", 0, 0)


def test_budget_state_of_another_budget_under_the_same_key_is_never_trusted(
    client: redis.Redis, prefix: str
) -> None:
    # What a fresh database next to an old Redis used to produce: a state already spent and
    # holding the new run's reservation ids as settled, under the key the new run looks up.
    stale = Budget(client, "run-a", key_prefix=prefix)
    stale.init(0.01, None)
    stale.settle("t1:s0", 0.009, 90)
    fresh = Budget(client, "run-a", key_prefix=prefix)
    fresh.budget_id = "run-b"  # same keys, another owner
    with pytest.raises(BudgetNotInitialized):
        fresh.reserve("t1:s0", 0.001, 1)
    with pytest.raises(BudgetNotInitialized):
        fresh.settle("t1:s0", 0.001, 1)
    with pytest.raises(BudgetNotInitialized):
        fresh.state()
    fresh.release("t1:s0")  # a foreign state is left alone
    assert stale.state().spent_usd == 0.009
    assert fresh.rebuild(0.005, None)
    state = fresh.state()
    assert (state.limit_usd, state.spent_usd, state.reserved_usd) == (0.005, 0.0, 0.0)
    assert fresh.reserve("t1:s0", 0.004, 10)
    assert not fresh.reserve("t2:s0", 0.002, 10)
    with pytest.raises(BudgetNotInitialized):
        stale.state()


def test_budget_ids_never_share_state(client: redis.Redis, prefix: str) -> None:
    one, two = Budget(client, "a", key_prefix=prefix), Budget(client, "b", key_prefix=prefix)
    one.init(1.0, None)
    one.settle("t1:s0", 0.5, 5)
    with pytest.raises(BudgetNotInitialized):
        two.reserve("t1:s0", 0.1, 1)
    two.init(1.0, None)
    assert two.state().spent_usd == 0
    with pytest.raises(ValueError):
        Budget(client, "", key_prefix=prefix)
    with pytest.raises(ValueError):
        Budget(client, "x}y", key_prefix=prefix)


def test_budget_rebuild_counts_paid_calls_once_and_keeps_a_live_state(
    client: redis.Redis, prefix: str
) -> None:
    budget = Budget(client, "rebuilt", key_prefix=prefix)
    settled = [f"t{i}:s0" for i in range(12_000)]  # more than one SADD batch
    assert budget.rebuild(1.0, 10_000, spent_usd=0.25, spent_tokens=300, settled_ids=settled)
    # a late settle of a call the database already counted adds nothing
    assert not budget.settle("t11999:s0", 0.1, 10)
    assert budget.settle("t99999:s0", 0.1, 10)
    state = budget.state()
    assert (state.spent_usd, state.spent_tokens) == (0.35, 310)
    # a second rebuild (another worker that also found it missing) keeps the live state
    assert not budget.rebuild(1.0, 10_000, spent_usd=0.25, spent_tokens=300)
    assert budget.state().spent_usd == 0.35
    assert client.scard(budget.keys[2]) == 12_001
    # an exhausted run stays exhausted after a rebuild
    ex = Budget(client, "ex", key_prefix=prefix)
    assert ex.rebuild(1.0, None, exhausted=True)
    assert not ex.reserve("a", 0.0, 0)


def test_budget_tokens_dimension(client: redis.Redis, prefix: str) -> None:
    budget = Budget(client, "b8", key_prefix=prefix)
    budget.init(None, 1000)
    assert budget.reserve("a", 50.0, 600)
    assert not budget.reserve("b", 0.0, 401)
    assert budget.reserve("b", 0.0, 400)
    budget.settle("a", 1.0, 300)
    assert budget.reserve("c", 0.0, 300)
    assert not budget.reserve("d", 0.0, 1)
    state = budget.state()
    assert state.limit_usd is None and state.limit_tokens == 1000
    assert (state.spent_tokens, state.reserved_tokens) == (300, 700)


def test_budget_unlimited_and_exhausted(client: redis.Redis, prefix: str) -> None:
    budget = Budget(client, "b9", key_prefix=prefix)
    with pytest.raises(BudgetNotInitialized):
        budget.reserve("a", 1.0, 1)
    budget.init(None, None)
    assert all(budget.reserve(f"r{i}", 1e6, 10**9) for i in range(5))
    assert not budget.state().exhausted
    budget.exhaust()
    assert budget.state().exhausted
    assert not budget.reserve("late", 0.0, 0)
    budget.settle("r0", 1.0, 1)  # in-flight calls still settle after exhaustion
    assert budget.state().spent_usd == 1.0
    assert 0 < client.ttl(budget.keys[0]) <= 7 * 24 * 3600


# ---------------------------------------------------------------------------- rate limiter


def test_rate_limiter_requests_per_minute(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(
        client, "rpm", requests_per_minute=10, tokens_per_minute=None, key_prefix=prefix
    )
    assert [limiter.try_acquire(0) for _ in range(10)] == [0.0] * 10
    wait = limiter.try_acquire(0)
    assert 5.0 < wait <= 6.0  # one slot refills every 6 s
    assert limiter.try_acquire(0) > 0  # a refused request records nothing


def test_rate_limiter_wait_is_accurate(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(
        client, "fast", requests_per_minute=600, tokens_per_minute=None, key_prefix=prefix
    )
    while (wait := limiter.try_acquire(0)) == 0.0:
        pass
    assert 0 < wait <= 0.1
    time.sleep(wait)
    assert limiter.try_acquire(0) == 0.0


def test_rate_limiter_tokens_per_minute(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(
        client, "tpm", requests_per_minute=None, tokens_per_minute=1000, key_prefix=prefix
    )
    assert limiter.try_acquire(600) == 0.0
    wait = limiter.try_acquire(600)
    assert 11.0 < wait <= 12.0  # 200 tokens short at 1000/min
    assert limiter.try_acquire(300) == 0.0
    assert limiter.try_acquire(100) == 0.0
    assert limiter.try_acquire(1) > 0
    limiter.record_tokens(-500)  # actual usage was lower than estimated
    assert limiter.try_acquire(400) == 0.0
    limiter.record_tokens(300)  # or higher
    assert limiter.try_acquire(1) > 0


def test_rate_limiter_unlimited_and_oversized(client: redis.Redis, prefix: str) -> None:
    free = RateLimiter(client, "free", None, None, key_prefix=prefix)
    assert all(free.try_acquire(10**9) == 0.0 for _ in range(50))
    small = RateLimiter(client, "small", None, 100, key_prefix=prefix)
    assert small.try_acquire(500) == 0.0  # larger than a minute's capacity: admitted once
    assert small.try_acquire(1) > 60  # then paid back before anything else passes


def _rate_proc(queue, barrier, url: str, prefix: str) -> None:
    conn = redis.Redis.from_url(url)
    limiter = RateLimiter(
        conn, "shared", requests_per_minute=10, tokens_per_minute=None, key_prefix=prefix
    )
    barrier.wait(timeout=30)
    queue.put(sum(limiter.try_acquire(0) == 0.0 for _ in range(10)))


def test_rate_limiter_shared_by_processes(client: redis.Redis, prefix: str) -> None:
    results = _spawn(_rate_proc, [(REDIS_URL, prefix)] * 2)
    assert sum(results) == 10
