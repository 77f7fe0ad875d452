"""Allowances of subtrees against a real Redis: nested scopes, many threads racing on them."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from agents.budget import Budget, Carve
from agents.budget_scopes import Scopes, group_scope, task_scope
from tests.agents.test_limits import REDIS_URL


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    conn.ping()
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"test:scopes:{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(match=f"{value}*"))
    if keys:
        client.delete(*keys)


def _budget(client: redis.Redis, prefix: str, usd: float) -> tuple[Budget, Scopes]:
    budget = Budget(client, "run", key_prefix=prefix)
    budget.init(usd, None)
    return budget, Scopes(budget)


def _call(budget: Budget, rid: str, chain: list[str], carve: Carve, micro: int) -> str:
    grant = budget.reserve_call(
        rid,
        micro_usd=micro,
        tokens=10,
        min_micro_usd=micro,
        min_tokens=1,
        chain=chain,
        carve=carve,
    )
    return grant.outcome if grant.outcome != "exhausted" else f"exhausted:{grant.scope}"


def test_groups_get_shares_of_the_run_and_agents_shares_of_their_group(
    client: redis.Redis, prefix: str
) -> None:
    budget, scopes = _budget(client, prefix, 1.0)
    scopes.set_pool(4)  # web (weight 3), docs (weight 1)
    assert scopes.carve_share(group_scope("web"), 3, pool=2)[:2] == (750_000, -1)
    assert scopes.carve_share(group_scope("docs"), 1, pool=1)[:2] == (250_000, -1)
    # Idempotent: a re-planned group keeps its allowance and takes nothing more.
    assert scopes.carve_share(group_scope("web"), 3, pool=2) == (750_000, -1, False)
    chain = [task_scope(1), group_scope("web")]
    grant = budget.reserve_call(
        "a",
        micro_usd=1_000,
        tokens=10,
        min_micro_usd=1_000,
        min_tokens=1,
        chain=chain,
        carve=Carve("share", 1),
    )
    assert grant.carved and grant.outcome == "reserved"
    states = scopes.states([task_scope(1), group_scope("web")])
    assert states[task_scope(1)].allowance_usd == 0.375  # half of web's 0.75
    assert states[group_scope("web")].held_usd == pytest.approx(0.375 - 0.001)
    # A re-sent agent's next call finds its allowance: no second one is carved.
    again = budget.reserve_call(
        "b",
        micro_usd=1_000,
        tokens=10,
        min_micro_usd=1_000,
        min_tokens=1,
        chain=chain,
        carve=Carve("share", 1),
    )
    assert not again.carved
    assert scopes.states([task_scope(1)])[task_scope(1)].allowance_usd == 0.375


def test_a_subtree_that_runs_out_is_refused_while_its_sibling_goes_on(
    client: redis.Redis, prefix: str
) -> None:
    budget, scopes = _budget(client, prefix, 0.01)
    scopes.set_pool(2)
    scopes.carve_share(group_scope("a"), 1, pool=1)
    scopes.carve_share(group_scope("b"), 1, pool=1)
    greedy = [task_scope(1), group_scope("a")]
    for i in range(5):
        assert _call(budget, f"g{i}", greedy, Carve("share", 1), 1_000) == "reserved"
        budget.settle(f"g{i}", 0.001, 10, chain=greedy)
    # Group a's 5,000 micro-USD are spent: refused, naming the agent's scope (its own share).
    assert _call(budget, "g5", greedy, Carve("share", 1), 1_000) == f"exhausted:{task_scope(1)}"
    other = [task_scope(2), group_scope("b")]
    assert _call(budget, "o0", other, Carve("share", 1), 1_000) == "reserved"
    assert budget.state().spent_usd == 0.005


def test_leftover_of_a_finished_subtree_returns_to_its_parent(
    client: redis.Redis, prefix: str
) -> None:
    budget, scopes = _budget(client, prefix, 0.01)
    scopes.set_pool(1)
    scopes.carve_share(group_scope("a"), 1, pool=2)  # two agents share the whole 10,000
    first = [task_scope(1), group_scope("a")]
    assert _call(budget, "x", first, Carve("share", 1), 1_000) == "reserved"
    budget.settle("x", 0.0004, 10, chain=first)
    assert scopes.room_usd(group_scope("a")) == pytest.approx(0.005)  # 5,000 held for agent 1
    assert scopes.close(task_scope(1), group_scope("a")) == (4_600, 0)
    assert scopes.close(task_scope(1), group_scope("a")) == (0, 0)  # once
    assert scopes.room_usd(group_scope("a")) == pytest.approx(0.0096)
    # The second agent's share is carved from what is there now, leftover included.
    second = [task_scope(2), group_scope("a")]
    assert _call(budget, "y", second, Carve("share", 1), 1_000) == "reserved"
    assert scopes.states([task_scope(2)])[task_scope(2)].allowance_usd == 0.0096


def test_a_spawn_with_its_own_budget_gets_at_most_what_the_spawner_has(
    client: redis.Redis, prefix: str
) -> None:
    budget, scopes = _budget(client, prefix, 0.01)
    scopes.set_pool(1)
    scopes.carve_share(group_scope("a"), 1, pool=1)
    parent = [task_scope(1), group_scope("a")]
    assert _call(budget, "p", parent, Carve("share", 1), 1_000) == "reserved"
    budget.settle("p", 0.001, 10, chain=parent)
    child = [task_scope(2), *parent]
    assert _call(budget, "c", child, Carve("fixed", micro_usd=2_000), 500) == "reserved"
    assert scopes.states([task_scope(2)])[task_scope(2)].allowance_usd == 0.002
    greedy = [task_scope(3), *parent]
    assert _call(budget, "d", greedy, Carve("fixed", micro_usd=10**9), 500) == "reserved"
    # 10,000 - 1,000 spent - 2,000 held for the first child: 7,000 is all the second can get.
    assert scopes.states([task_scope(3)])[task_scope(3)].allowance_usd == 0.007


def _spawner(
    budget: Budget, chain: list[str], n: int, seed: int, calls: list[tuple], first: int = 0
) -> None:
    rnd = random.Random(seed)
    for i in range(first, first + n):
        rid = f"{chain[0]}:{i}"
        want = rnd.randint(200, 3_000)
        grant = budget.reserve_call(
            rid,
            micro_usd=want,
            tokens=10_000,
            min_micro_usd=min(want, 200),
            min_tokens=1,
            chain=chain,
            carve=Carve("share", rnd.randint(1, 3)),
        )
        if grant.outcome != "reserved":
            continue
        if rnd.random() < 0.1:
            budget.release(rid, chain=chain)
            continue
        cost = rnd.randint(0, grant.micro_usd)  # a call never costs more than its grant
        budget.settle(rid, cost / 1e6, 5, chain=chain)
        calls.append((chain, cost))


def test_a_hundred_concurrent_spawners_never_exceed_any_allowance(
    client: redis.Redis, prefix: str
) -> None:
    """100 threads: 4 groups of 5 agents, each agent spawning 4 children; every one reserves
    and settles at once. Checked afterwards against the settled costs: at every level what
    its subtree spent is at most its allowance."""
    budget, scopes = _budget(client, prefix, 0.2)
    scopes.set_pool(4)
    groups = [group_scope(f"g{i}") for i in range(4)]
    for g in groups:
        scopes.carve_share(g, 1, pool=5 * 2)
    chains: list[list[str]] = []
    for gi, g in enumerate(groups):
        for a in range(5):
            agent = task_scope(100 * gi + a)
            chains.append([agent, g])
            for c in range(4):
                chains.append([task_scope(10_000 + 1000 * gi + 10 * a + c), agent, g])
    assert len(chains) == 100
    calls: list[tuple] = []
    barrier = threading.Barrier(len(chains))
    # A child is spawned by an agent that has run: it waits for its spawner's first call.
    started = {chain[0]: threading.Event() for chain in chains if len(chain) == 2}

    def work(index: int, chain: list[str]) -> None:
        barrier.wait()
        if len(chain) == 3:
            started[chain[1]].wait()
            scopes.add_pool(chain[1], 2)  # its spawner pooled its weight
            _spawner(budget, chain, 12, index, calls)
            return
        _spawner(budget, chain, 1, index, calls)
        started[chain[0]].set()
        _spawner(budget, chain, 11, index + 1000, calls, first=1)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(chains)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = {s for chain in chains for s in chain}
    states = scopes.states(every)
    spent: dict[str, int] = {}
    for chain, cost in calls:
        for s in chain:
            spent[s] = spent.get(s, 0) + cost
    run_total = sum(cost for _, cost in calls)
    assert run_total <= 200_000 and budget.state().spent_usd == pytest.approx(run_total / 1e6)
    assert run_total > 100_000  # they really competed for it
    for name, state in states.items():
        assert state.reserved_usd == 0
        assert state.spent_usd == pytest.approx(spent.get(name, 0) / 1e6)
        if state.allowance_usd is not None:
            assert spent.get(name, 0) <= round(state.allowance_usd * 1e6), name
    assert sum(1 for s in states.values() if s.spent_usd) > 50
