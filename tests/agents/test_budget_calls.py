"""How a model call is sized against its run's budget (``agents.budget_calls``) and what
``Budget.reserve_call`` grants it, against a real Redis: the upper bound while it fits, what is
left down to the call's likely size near the end, a wait while calls in flight hold the rest,
and never more than the limit, with hundreds of reservations in flight across processes."""

from __future__ import annotations

import multiprocessing
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from agents.budget import Budget, usd_to_micro
from agents.budget_calls import LIKELY_OUTPUT_MARGIN, likely_output_tokens, size_call
from agents.contract import AgentRequest, ModelStep, ToolStep, Usage
from agents.pricing import estimate_cost_upper_bound
from agents.providers.heuristic import OUTPUT_CAP_RULE, HeuristicProvider
from agents.snapshot import Snapshot, freeze_directory
from harness_site.testing.targets import VULNERABLE_MODULE
from tests.agents.test_limits import REDIS_URL


def heuristic_price(tokens_in: int, tokens_out: int) -> Decimal:
    """What the offline analyzer bills: $0.50 / $1.50 per million input / output tokens."""
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    return estimate_cost_upper_bound("heuristic", "heuristic", "heuristic-v1", usage)


def micro(tokens_in: int, tokens_out: int) -> int:
    return usd_to_micro(float(heuristic_price(tokens_in, tokens_out)))


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    conn.ping()  # no Redis is a failure, not a skip
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"test:budget-calls:{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(match=f"{value}*"))
    if keys:
        client.delete(*keys)


# ---------------------------------------------------------------------------- sizing


def test_a_call_is_likely_to_output_the_runs_average_with_a_margin() -> None:
    assert likely_output_tokens(2048, calls=0, output_tokens=0) == 2048  # nothing known yet
    assert likely_output_tokens(2048, calls=4, output_tokens=800) == 300  # 200 x 1.5
    assert likely_output_tokens(2048, calls=3, output_tokens=100) == 50  # ceil(33.3 x 1.5)
    assert likely_output_tokens(512, calls=2, output_tokens=4000) == 512  # never above its cap
    assert likely_output_tokens(2048, calls=5, output_tokens=0) == 1  # never nothing
    assert likely_output_tokens(0, calls=5, output_tokens=500) == 0
    assert LIKELY_OUTPUT_MARGIN > 1


def test_a_call_is_sized_from_its_prompt_and_the_models_price() -> None:
    size = size_call(heuristic_price, 1_000, 2_048, calls=10, output_tokens=2_000)
    assert size.likely_output == 300
    assert (size.tokens, size.min_tokens) == (3_048, 1_300)
    # 1,000 in at $0.50/M + 2,048 out at $1.50/M; the likely size: 300 out
    assert size.micro_usd == 500 + 3_072
    assert size.min_micro_usd == 500 + 450
    with pytest.raises(ValueError):
        size_call(heuristic_price, -1, 2_048, calls=0, output_tokens=0)


def test_the_output_cap_is_what_the_grant_pays_for() -> None:
    size = size_call(heuristic_price, 1_000, 2_048, calls=10, output_tokens=2_000)
    assert size.output_cap(size.micro_usd, size.tokens) == 2_048  # the whole bound: no cut
    assert size.output_cap(10**9, 10**9) == 2_048  # never above the call's own cap
    assert size.output_cap(size.min_micro_usd, size.min_tokens) == size.likely_output
    # A grant between the two: the largest output whose cost still fits it.
    cap = size.output_cap(2_000, 10**9)
    assert micro(1_000, cap) <= 2_000 < micro(1_000, cap + 1)
    assert cap == 1_000  # 500 + 1,000 x 1.5
    # The token grant binds as well.
    assert size.output_cap(10**9, 1_400) == 400
    # A grant that does not even pay for the input allows no output.
    assert size.output_cap(499, 10**9) == 0


def test_an_unpriced_call_is_capped_by_tokens_alone() -> None:
    def unpriced(tokens_in: int, tokens_out: int) -> Decimal:
        return Decimal(0)

    size = size_call(unpriced, 700, 1_000, calls=2, output_tokens=100)
    assert (size.micro_usd, size.min_micro_usd) == (0, 0)
    assert size.output_cap(0, 900) == 200


class GrantingContext:
    """An AgentContext whose budget grants the call ``cap`` output tokens."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.paid: list[Usage] = []

    def replay(self, index: int) -> dict[str, Any] | None:
        return None

    def before_call(self, index: int, *, model: str, input_tokens: int, output_tokens: int) -> int:
        return min(self.cap, output_tokens)

    def after_call(self, index: int, call: ModelStep) -> None:
        self.paid.append(call.usage)

    def release_call(self, index: int) -> None:
        pass

    def tool_step(self, index: int, tool: ToolStep) -> None:
        pass

    def check_cancelled(self) -> None:
        pass


def _busy_module(tmp_path: Path) -> Snapshot:
    root = tmp_path / "target"
    root.mkdir()
    (root / "busy.py").write_text("".join(VULNERABLE_MODULE.format(n=n) for n in range(2)))
    manifest = freeze_directory(root, [root], tmp_path / "store")
    return Snapshot.open(tmp_path / "store", manifest.key)


@pytest.mark.parametrize("cap", [2_048, 120])
def test_an_agent_outputs_no_more_than_its_grant_and_says_what_the_budget_cut(
    tmp_path: Path, cap: int
) -> None:
    context = GrantingContext(cap)
    request = AgentRequest(
        run_id=1,
        task_id=1,
        task_key="k",
        step="analyze",
        lens="security",
        scope={"files": ["busy.py"]},
        model="heuristic-v1",
        snapshot=_busy_module(tmp_path),
        context=context,
    )
    output = HeuristicProvider().run_agent(request).output
    [usage] = context.paid
    assert usage.output_tokens <= cap
    notes = [f for f in output.findings if f.rule == OUTPUT_CAP_RULE]
    if cap == 2_048:  # the whole cap: nothing cut
        assert not notes and len(output.findings) >= 8
    else:
        [note] = notes
        assert note.detail.startswith("What was left of the run's budget cut")
        assert output.data["dropped_findings"]["count"] >= 1


# ---------------------------------------------------------------------------- reservations


def test_the_upper_bound_while_it_fits_then_what_is_left_down_to_the_likely_size(
    client: redis.Redis, prefix: str
) -> None:
    budget = Budget(client, "grants", key_prefix=prefix)
    budget.init(0.01, None)  # 10,000 micro-USD
    full = budget.reserve_call("a", micro_usd=4_000, tokens=3_000, min_micro_usd=900, min_tokens=1)
    assert (full.outcome, full.micro_usd, full.tokens) == ("reserved", 4_000, 3_000)
    assert (
        budget.reserve_call("a", micro_usd=4_000, tokens=3_000, min_micro_usd=900, min_tokens=1)
        == full
    )  # a redelivered call keeps its grant and reserves nothing more
    second = budget.reserve_call(
        "b", micro_usd=4_000, tokens=3_000, min_micro_usd=900, min_tokens=1
    )
    assert second.outcome == "reserved"
    # 8,000 reserved: the next call gets the 2,000 left, more than its likely 900.
    rest = budget.reserve_call("c", micro_usd=4_000, tokens=3_000, min_micro_usd=900, min_tokens=1)
    assert (rest.outcome, rest.micro_usd) == ("reserved", 2_000)
    # Nothing left: a call that fits once the calls in flight settle waits.
    wait = budget.reserve_call("d", micro_usd=4_000, tokens=10, min_micro_usd=900, min_tokens=1)
    assert wait.outcome == "wait"
    state = budget.state()
    assert (state.reserved_usd, state.spent_usd) == (0.01, 0.0)

    budget.settle("a", 0.0012, 1_300, output_tokens=300)
    budget.settle("b", 0.0008, 1_000, output_tokens=100)
    budget.settle("b", 0.0008, 1_000, output_tokens=100)  # a redelivered settle counts once
    state = budget.state()
    assert (state.calls, state.output_tokens) == (2, 400)
    assert round(state.spent_usd, 6) == 0.002 and state.reserved_usd == 0.002
    again = budget.reserve_call("d", micro_usd=4_000, tokens=10, min_micro_usd=900, min_tokens=1)
    assert (again.outcome, again.micro_usd) == ("reserved", 4_000)
    assert budget.state().reserved_usd == 0.006

    # Spent 7,500 with nothing in flight: a likely size of 2,600 cannot fit even then.
    budget.settle("c", 0.0015, 800)  # output unknown: not in the average
    budget.settle("d", 0.004, 10)
    state = budget.state()
    assert (state.calls, round(state.spent_usd, 6), state.reserved_usd) == (2, 0.0075, 0.0)
    late = budget.reserve_call("e", micro_usd=4_000, tokens=10, min_micro_usd=2_600, min_tokens=1)
    assert late.outcome == "exhausted"
    small = budget.reserve_call("f", micro_usd=4_000, tokens=10, min_micro_usd=2_500, min_tokens=1)
    assert (small.outcome, small.micro_usd) == ("reserved", 2_500)
    budget.exhaust()  # the run was declared exhausted: even a free call is refused
    free = budget.reserve_call("g", micro_usd=0, tokens=0, min_micro_usd=0, min_tokens=0)
    assert free.outcome == "exhausted"


def test_the_token_limit_grants_the_same_way(client: redis.Redis, prefix: str) -> None:
    budget = Budget(client, "tokens", key_prefix=prefix)
    budget.init(None, 5_000)
    first = budget.reserve_call("a", micro_usd=0, tokens=3_000, min_micro_usd=0, min_tokens=1_200)
    assert (first.outcome, first.tokens) == ("reserved", 3_000)
    second = budget.reserve_call("b", micro_usd=0, tokens=3_000, min_micro_usd=0, min_tokens=1_200)
    assert (second.outcome, second.tokens) == ("reserved", 2_000)
    third = budget.reserve_call("c", micro_usd=0, tokens=3_000, min_micro_usd=0, min_tokens=1_200)
    assert third.outcome == "wait"
    budget.settle("a", 0, 3_000)
    budget.settle("b", 0, 1_000)
    late = budget.reserve_call("c", micro_usd=0, tokens=3_000, min_micro_usd=0, min_tokens=1_200)
    assert late.outcome == "exhausted"  # 4,000 spent: 1,200 never fits


def test_a_likely_size_above_the_upper_bound_is_refused(client: redis.Redis, prefix: str) -> None:
    budget = Budget(client, "bad", key_prefix=prefix)
    budget.init(1.0, None)
    with pytest.raises(ValueError):
        budget.reserve_call("a", micro_usd=10, tokens=10, min_micro_usd=11, min_tokens=1)
    with pytest.raises(ValueError):
        budget.reserve_call("a", micro_usd=10, tokens=-1, min_micro_usd=1, min_tokens=0)


def test_a_rebuilt_state_keeps_the_running_average(client: redis.Redis, prefix: str) -> None:
    budget = Budget(client, "rebuilt", key_prefix=prefix)
    budget.rebuild(0.5, None, spent_usd=0.1, settled_ids=["t1:s0"], calls=4, output_tokens=900)
    state = budget.state()
    assert (state.calls, state.output_tokens, state.spent_usd) == (4, 900, 0.1)
    assert not budget.settle("t1:s0", 0.1, 10, output_tokens=50)  # counted in the rebuild
    assert budget.state().calls == 4


# ---------------------------------------------------------------------------- concurrency

ROUNDS = 500  # at most: a process stops at the end of the budget
IN_FLIGHT = 40  # per process; 8 processes hold up to 320 reservations at once
LIMIT_MICRO = 1_500_000  # $1.50: about 1,400 calls of the sizes below, 400 upper bounds


def _calls_proc(queue, barrier, url: str, prefix: str, seed: int) -> None:
    """Reserve IN_FLIGHT calls, then settle each for a random output within its cap (twice: a
    redelivered agent settles again), round after round until the budget is exhausted."""
    rng = random.Random(seed)
    budget = Budget(redis.Redis.from_url(url), "race", key_prefix=prefix)
    barrier.wait(timeout=30)
    paid_micro, paid_calls, overruns, exhausted, most_in_flight = 0, 0, 0, False, 0
    for round_ in range(ROUNDS):
        held = []
        for i in range(IN_FLIGHT):
            state = budget.state()
            tokens_in = rng.randint(200, 2_500)
            size = size_call(heuristic_price, tokens_in, 2_048, state.calls, state.output_tokens)
            rid = f"{seed}:{round_}:{i}"
            grant = budget.reserve_call(
                rid,
                micro_usd=size.micro_usd,
                tokens=size.tokens,
                min_micro_usd=size.min_micro_usd,
                min_tokens=size.min_tokens,
            )
            if grant.outcome == "exhausted":
                exhausted = True
                break
            if grant.outcome == "reserved":
                held.append((rid, tokens_in, grant, size.output_cap(grant.micro_usd, grant.tokens)))
        most_in_flight = max(most_in_flight, int(budget.client.hlen(budget.keys[1])))
        for rid, tokens_in, grant, cap in held:
            # Mostly small answers, a few long ones, as the offline analyzer's agents give.
            wanted = rng.randint(20, 120) if rng.random() < 0.7 else rng.randint(300, 1_300)
            out = min(cap, wanted)
            cost = micro(tokens_in, out)
            overruns += cost > grant.micro_usd
            assert budget.settle(rid, cost / 1_000_000, tokens_in + out, output_tokens=out)
            assert not budget.settle(rid, cost / 1_000_000, tokens_in + out, output_tokens=out)
            paid_micro += cost
            paid_calls += 1
        if exhausted:
            break
    queue.put((paid_micro, paid_calls, overruns, exhausted, most_in_flight))


def test_hundreds_of_calls_in_flight_never_overspend_and_use_the_budget_up(
    client: redis.Redis, prefix: str
) -> None:
    budget = Budget(client, "race", key_prefix=prefix)
    budget.init(LIMIT_MICRO / 1_000_000, None)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(8)
    procs = [
        ctx.Process(target=_calls_proc, args=(queue, barrier, REDIS_URL, prefix, seed))
        for seed in range(8)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
        assert proc.exitcode == 0

    state = budget.state()
    spent = round(state.spent_usd * 1_000_000)
    assert all(r[2] == 0 for r in results)  # no call cost more than it was granted
    assert spent == sum(r[0] for r in results)  # every call paid once
    assert state.calls == sum(r[1] for r in results)
    assert state.reserved_usd == 0 and state.reserved_tokens == 0
    assert all(r[3] for r in results)  # every process ran into the end of the budget
    assert max(r[4] for r in results) >= 100  # reservations in flight at once
    assert spent <= LIMIT_MICRO
    # Exhausted only once a call's likely size (its input and 1.5 x the average output, at
    # most 2,500 x 0.5 + 1,300 x 1.5 x 1.5 = 4,175 micro-USD) no longer fits with nothing in
    # flight: above 99 % used.
    assert spent >= LIMIT_MICRO * 0.99
