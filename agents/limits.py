"""Hard limits shared by every worker process: concurrency, budget and rate, all in Redis.

Every check-and-update is one Lua script (registered once per instance with
``client.register_script``), so it is atomic across threads, processes and machines. Clocks come
from Redis ``TIME`` inside the scripts: worker clocks may drift, the limits do not.

Keys (``key_prefix`` defaults to ``"harness:"``; tests pass a unique prefix):

- ``{prefix}sem:{name}``: sorted set, member = holder id, score = lease expiry (µs).
- ``{prefix}budget:{<run uid>}`` (hash), ``...:res`` (reservation id -> "usd:tokens"),
  ``...:settled`` (set of settled reservation ids). Amounts are integers: micro-USD and tokens.
  The run's UUID, not its integer id, names the keys: a fresh database hands out ids 1, 2, …
  again, and a Redis that outlived the old database must not lend the new run its spending.
- ``{prefix}rate:{<name>}:req`` / ``:tok``: GCRA theoretical arrival times (µs).

Every key carries a TTL, so abandoned runs and dead holders leave nothing behind for long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis

MICRO_USD = 1_000_000
"""Micro-USD per USD: budgets are stored as integers to keep Lua arithmetic exact."""

BUDGET_TTL_SECONDS = 7 * 24 * 3600

# Shared Lua prologue: the Redis clock in microseconds (fits a double exactly).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# ARGV: holder, limit, lease_us, mode ('acquire' | 'renew').
_SEM_TAKE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held then
  if ARGV[4] == 'renew' then return 0 end
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
-- the key lives exactly as long as its longest lease (+1 s), so dead runs leave nothing
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) / 1000) + 1000)
return 1
"""
)

_SEM_LIVE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

# Budget: KEYS = state hash, reservations hash, settled set. Fields: lu/lt = limits (-1 means
# unlimited), su/st = spent, ru/rt = reserved, ex = exhausted flag.
_BUDGET_EXPIRE = """
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[#ARGV]) end
"""

# A state hash is ours only if its ``id`` field names this budget: anything else (missing, or
# written by someone else under the same key) counts as uninitialized and is never trusted.
_BUDGET_OWNED = """
local function owned()
  return redis.call('HGET', KEYS[1], 'id') == ARGV[1]
end
"""

# Rebuild from the database's truth, only where no state of ours exists (so two workers that
# both find the state missing cannot overwrite a settle that came in between; see
# Budget.rebuild). ARGV: id, lu, lt, su, st, ex, ttl, settled ids... Returns 1 if written.
_BUDGET_REBUILD = (
    _BUDGET_OWNED
    + """
if owned() then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'lu', ARGV[2], 'lt', ARGV[3], 'su', ARGV[4],
  'st', ARGV[5], 'ru', 0, 'rt', 0, 'ex', ARGV[6])
for i = 8, #ARGV, 5000 do
  redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + 4999, #ARGV)))
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return 1
"""
)

# ARGV: id, rid, usd, tokens, ttl. Returns -1 uninitialized, 0 refused, 1 reserved (or already
# was).
_BUDGET_RESERVE = (
    _BUDGET_OWNED
    + """
if not owned() then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 1 end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return 1 end
local s = redis.call('HMGET', KEYS[1], 'lu', 'lt', 'su', 'st', 'ru', 'rt', 'ex')
if tonumber(s[7]) == 1 then return 0 end
local lu, lt = tonumber(s[1]), tonumber(s[2])
if lu >= 0 and tonumber(s[3]) + tonumber(s[5]) + tonumber(ARGV[3]) > lu then return 0 end
if lt >= 0 and tonumber(s[4]) + tonumber(s[6]) + tonumber(ARGV[4]) > lt then return 0 end
redis.call('HINCRBY', KEYS[1], 'ru', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'rt', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. ':' .. ARGV[4])
"""
    + _BUDGET_EXPIRE
    + "return 1\n"
)

# Drops a pending reservation; returns 1 if there was one.
_DROP_RESERVATION = """
local function drop(rid)
  local r = redis.call('HGET', KEYS[2], rid)
  if not r then return 0 end
  local u, t = string.match(r, '^(%d+):(%d+)$')
  redis.call('HINCRBY', KEYS[1], 'ru', 0 - tonumber(u))
  redis.call('HINCRBY', KEYS[1], 'rt', 0 - tonumber(t))
  redis.call('HDEL', KEYS[2], rid)
  return 1
end
"""

# ARGV: id, rid, usd, tokens, ttl. Returns -1 uninitialized, 0 already settled, 1 counted.
_BUDGET_SETTLE = (
    _BUDGET_OWNED
    + _DROP_RESERVATION
    + """
if not owned() then return -1 end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then return 0 end
drop(ARGV[2])
redis.call('HINCRBY', KEYS[1], 'su', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'st', ARGV[4])
"""
    + _BUDGET_EXPIRE
    + "return 1\n"
)

# ARGV: id, rid. A foreign state is left alone.
_BUDGET_RELEASE = (
    _BUDGET_OWNED + _DROP_RESERVATION + "if not owned() then return 0 end\nreturn drop(ARGV[2])\n"
)

# GCRA: KEYS = request TAT, token TAT. ARGV: request interval µs, token interval µs (0 = no limit),
# tokens, mode ('acquire' | 'record'). Returns µs to wait (0 = recorded).
_RATE = (
    _NOW
    + """
local window = 60000000
local function plan(key, interval, cost)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  -- a request larger than a whole window's capacity is checked as exactly that capacity,
  -- else it could never pass; its full cost is still recorded below (it runs into debt)
  local check = math.min(cost, window / interval)
  return tat + interval * cost, tat + interval * check - window - now
end
local function store(key, tat)
  if tat < now then tat = now end
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local ri, ti, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] == 'record' then
  if ti > 0 then store(KEYS[2], (select(1, plan(KEYS[2], ti, cost)))) end
  return 0
end
local rtat, rwait, ttat, twait = nil, 0, nil, 0
if ri > 0 then rtat, rwait = plan(KEYS[1], ri, 1) end
if ti > 0 then ttat, twait = plan(KEYS[2], ti, cost) end
local wait = math.max(rwait, twait)
if wait > 0 then return math.ceil(wait) end
if rtat then store(KEYS[1], rtat) end
if ttat then store(KEYS[2], ttat) end
return 0
"""
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def usd_to_micro(usd: float) -> int:
    """Convert USD to integer micro-USD, rounding up so estimates stay upper bounds.

    The inner ``round`` absorbs float noise (0.0035 * 1e6 == 3500.0000000000005 must be 3500).
    """
    if usd < 0:
        raise ValueError(f"amount must be >= 0, got {usd}")
    return math.ceil(round(usd * MICRO_USD, 3))


def reserve_upper_bound(
    *,
    prompt_chars: int,
    max_output_tokens: int,
    usd_per_million_input: float,
    usd_per_million_output: float,
    chars_per_token: float = 2.0,
    margin: float = 1.1,
) -> tuple[float, int]:
    """Return ``(usd, tokens)`` to pass to :meth:`Budget.reserve` before one model call.

    Contract: the budget only holds if every reservation is an upper bound of what the call can
    cost, because :meth:`Budget.settle` records actual usage honestly and never clamps it. So:

    - output is bounded by ``max_output_tokens``, which the caller MUST also send to the API
      (for reasoning models it must bound reasoning + visible output together);
    - input is estimated from characters (tokenizers are not available offline), deliberately
      pessimistic: ``chars_per_token=2`` is about half of real English text, times ``margin``;
    - prices must be the highest tier that may apply (e.g. long-context pricing).

    A model without a price must not be reserved as $0: the caller refuses or uses an override.
    """
    if prompt_chars < 0 or max_output_tokens < 0:
        raise ValueError("prompt_chars and max_output_tokens must be >= 0")
    input_tokens = math.ceil(prompt_chars / chars_per_token * margin)
    usd = (input_tokens * usd_per_million_input + max_output_tokens * usd_per_million_output) / 1e6
    return usd, input_tokens + max_output_tokens


class LeaseSemaphore:
    """Counting semaphore whose slots come back when a holder dies.

    Holders lease a slot for ``lease_seconds``; a holder that is killed (SIGKILL, lost machine)
    simply stops renewing and its slot is reclaimed by the next ``acquire`` after expiry. Long
    calls must therefore ``renew`` more often than ``lease_seconds``.

    ``limit`` may be overridden per call (playbooks may change it between runs); lowering it never
    evicts current holders, it only refuses newcomers until the count drops below it.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        limit: int,
        lease_seconds: float = 60,
        *,
        key_prefix: str = "harness:",
    ) -> None:
        if limit < 0 or lease_seconds <= 0:
            raise ValueError("limit must be >= 0 and lease_seconds > 0")
        self.client = client
        self.name = name
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.key = f"{key_prefix}sem:{name}"
        self._take = client.register_script(_SEM_TAKE)
        self._live = client.register_script(_SEM_LIVE)

    def _run_take(self, holder: str, limit: int | None, mode: str) -> bool:
        lease_us = max(1, round(self.lease_seconds * 1_000_000))
        args: list[str | int | float] = [
            holder,
            self.limit if limit is None else limit,
            lease_us,
            mode,
        ]
        return bool(self._take(keys=[self.key], args=args))

    def acquire(self, holder: str, limit: int | None = None) -> bool:
        """Take a slot for ``holder``; False if ``limit`` (default: the constructor's) is reached.

        Expired leases are purged first. Re-acquiring a slot already held is idempotent: it
        returns True and renews the lease without taking a second slot.
        """
        return self._run_take(holder, limit, "acquire")

    def renew(self, holder: str) -> bool:
        """Extend ``holder``'s lease by ``lease_seconds``; False if the lease was already lost.

        A holder that gets False must stop work it started under the slot, or re-acquire.
        """
        return self._run_take(holder, None, "renew")

    def release(self, holder: str) -> None:
        """Give the slot back. Idempotent: releasing a slot not held does nothing."""
        self.client.zrem(self.key, holder)

    def holders(self) -> list[str]:
        """Current holders with a live lease (expired ones are purged first)."""
        return [_text(m) for m in self._live(keys=[self.key])]

    def count(self) -> int:
        """Number of live holders."""
        return len(self.holders())


class BudgetNotInitialized(LookupError):
    """The run's budget was never initialized (or expired): refusing beats spending blindly."""


@dataclass(frozen=True, slots=True)
class BudgetState:
    """Snapshot of one run's budget. Limits are None when unlimited."""

    limit_usd: float | None
    limit_tokens: int | None
    spent_usd: float
    spent_tokens: int
    reserved_usd: float
    reserved_tokens: int
    exhausted: bool


class Budget:
    """One spending ceiling per run, in micro-USD and tokens, shared by every worker.

    Protocol per model call: ``reserve(rid, upper_bound_usd, upper_bound_tokens)``; if False do
    not call the model (stop spawning/dispatching, see DESIGN "Limits"); after the call
    ``settle(rid, actual_usd, actual_tokens)``, or ``release(rid)`` if the call failed before
    spending anything. ``rid`` must identify one call *attempt*: a retried call that may bill
    again needs a fresh id, otherwise its settle is ignored as a duplicate.

    ``budget_id`` must be unique per run and deployment (the run's UUID): it names the keys and
    is stored inside the state, and every script treats a state carrying another id as missing.

    Invariant: ``spent + reserved <= limit`` at every reserve, so ``spent <= limit`` holds as
    long as actual usage never exceeds its reservation (see :func:`reserve_upper_bound`).
    ``settle`` never clamps: if a reservation was too small, the overrun is recorded honestly.
    """

    def __init__(
        self,
        client: redis.Redis,
        budget_id: str,
        *,
        key_prefix: str = "harness:",
        ttl_seconds: int = BUDGET_TTL_SECONDS,
    ) -> None:
        if not budget_id or "}" in budget_id:
            raise ValueError(f"budget_id must be a non-empty id without '}}', got {budget_id!r}")
        self.client = client
        self.budget_id = budget_id
        self.ttl_seconds = ttl_seconds
        # the hash tag keeps a run's three keys in one slot, so scripts also work on a cluster
        base = f"{key_prefix}budget:{{{budget_id}}}"
        self.keys = [base, f"{base}:res", f"{base}:settled"]
        self._rebuild = client.register_script(_BUDGET_REBUILD)
        self._reserve = client.register_script(_BUDGET_RESERVE)
        self._settle = client.register_script(_BUDGET_SETTLE)
        self._release = client.register_script(_BUDGET_RELEASE)

    def _missing(self) -> BudgetNotInitialized:
        return BudgetNotInitialized(f"budget {self.budget_id} is not initialized")

    def init(self, limit_usd: float | None, limit_tokens: int | None) -> bool:
        """Create an unspent budget. Idempotent: a second call keeps the first limits and usage.

        Returns True if this call created the state.
        """
        return self.rebuild(limit_usd, limit_tokens)

    def rebuild(
        self,
        limit_usd: float | None,
        limit_tokens: int | None,
        *,
        spent_usd: float = 0.0,
        spent_tokens: int = 0,
        settled_ids: list[str] | tuple[str, ...] = (),
        exhausted: bool = False,
    ) -> bool:
        """Write the state from the system of record, unless a state of this budget exists.

        ``spent_*`` must be everything already paid for and ``settled_ids`` the reservation ids
        of those calls, so a late ``settle`` of one of them is not counted twice. Pending
        reservations are not known to the database and start at zero. A state left under the
        same keys by another budget id is replaced. Returns True if it wrote the state.
        """
        if limit_tokens is not None and limit_tokens < 0:
            raise ValueError("limit_tokens must be >= 0 or None")
        if spent_tokens < 0:
            raise ValueError("spent_tokens must be >= 0")
        lu = -1 if limit_usd is None else usd_to_micro(limit_usd)
        lt = -1 if limit_tokens is None else limit_tokens
        args: list[str | int | float] = [
            self.budget_id,
            lu,
            lt,
            usd_to_micro(spent_usd),
            spent_tokens,
            1 if exhausted else 0,
            self.ttl_seconds,
            *settled_ids,
        ]
        return self._rebuild(keys=self.keys, args=args) == 1

    def reserve(self, reservation_id: str, usd: float, tokens: int) -> bool:
        """Atomically reserve ``usd``/``tokens`` if spent + reserved + this fits BOTH limits.

        Returns False (reserving nothing) when it does not fit or the budget is exhausted.
        Idempotent per ``reservation_id``: a pending or already-settled id returns True without
        reserving again. Raises BudgetNotInitialized if the state is missing or not this
        budget's.
        """
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        args: list[str | int | float] = [
            self.budget_id,
            reservation_id,
            usd_to_micro(usd),
            tokens,
            self.ttl_seconds,
        ]
        result = self._reserve(keys=self.keys, args=args)
        if result == -1:
            raise self._missing()
        return result == 1

    def settle(self, reservation_id: str, actual_usd: float, actual_tokens: int) -> bool:
        """Atomically drop the reservation and add the actual usage to spent.

        Idempotent per ``reservation_id`` (settled ids are remembered): settling twice counts
        once. An unknown (never reserved, or released) id still adds its usage once, so no usage
        is ever lost. Nothing is clamped: actual usage above the reservation is recorded as is.
        Returns True if this call counted the usage.
        """
        if actual_tokens < 0:
            raise ValueError("actual_tokens must be >= 0")
        args: list[str | int | float] = [
            self.budget_id,
            reservation_id,
            usd_to_micro(actual_usd),
            actual_tokens,
            self.ttl_seconds,
        ]
        result = self._settle(keys=self.keys, args=args)
        if result == -1:
            raise self._missing()
        return result == 1

    def release(self, reservation_id: str) -> None:
        """Drop an unsettled reservation (the call failed before spending). Idempotent."""
        self._release(keys=self.keys, args=[self.budget_id, reservation_id])

    def exhaust(self) -> None:
        """Mark the budget exhausted: every later ``reserve`` is refused."""
        with self.client.pipeline() as pipe:
            pipe.hset(self.keys[0], "ex", 1)
            pipe.expire(self.keys[0], self.ttl_seconds)
            pipe.execute()

    def is_exhausted(self) -> bool:
        """True once ``exhaust`` was called (a refused reserve alone does not set it)."""
        return _text(self.client.hget(self.keys[0], "ex") or b"0") == "1"

    def _fields(self) -> list[int]:
        raw: list[Any] = self.client.hmget(
            self.keys[0], ["id", "lu", "lt", "su", "st", "ru", "rt", "ex"]
        )
        if raw[0] is None or _text(raw[0]) != self.budget_id:
            raise self._missing()
        return [int(_text(v or b"0")) for v in raw[1:]]

    def state(self) -> BudgetState:
        """Consistent snapshot (one HMGET) of limits, spent, reserved and the exhausted flag."""
        lu, lt, su, st, ru, rt, ex = self._fields()
        return BudgetState(
            limit_usd=None if lu < 0 else lu / MICRO_USD,
            limit_tokens=None if lt < 0 else lt,
            spent_usd=su / MICRO_USD,
            spent_tokens=st,
            reserved_usd=ru / MICRO_USD,
            reserved_tokens=rt,
            exhausted=ex == 1,
        )

    def would_exceed(self, usd: float, tokens: int) -> bool:
        """True if spending ``usd``/``tokens`` on top of spent + reserved would pass a limit.

        Advisory only (not atomic with anything): use it to report an overrun or to decide
        whether to try at all; ``reserve`` is what enforces the limit.
        """
        lu, lt, su, st, ru, rt, _ = self._fields()
        over_usd = lu >= 0 and su + ru + usd_to_micro(usd) > lu
        return over_usd or (lt >= 0 and st + rt + tokens > lt)


class RateLimiter:
    """Requests- and tokens-per-minute limits shared by every worker process (GCRA).

    Each limit is a token bucket of one minute's capacity refilling continuously, stored as one
    "theoretical arrival time" per dimension: O(1) per call whatever the token weights. A burst
    of up to the full per-minute capacity passes at once, then calls are spaced evenly.
    None means unlimited for that dimension.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        *,
        key_prefix: str = "harness:",
    ) -> None:
        for value in (requests_per_minute, tokens_per_minute):
            if value is not None and value <= 0:
                raise ValueError("rate limits must be positive or None")
        self.client = client
        self.name = name
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        base = f"{key_prefix}rate:{{{name}}}"
        self.keys = [f"{base}:req", f"{base}:tok"]
        self._script = client.register_script(_RATE)

    @staticmethod
    def _interval_us(per_minute: int | None) -> str:
        # repr keeps the float exact; 0 tells the script the dimension is unlimited
        return "0" if per_minute is None else repr(60_000_000 / per_minute)

    def _call(self, tokens: int, mode: str) -> int:
        rpm, tpm = self.requests_per_minute, self.tokens_per_minute
        args: list[str | int | float] = [
            self._interval_us(rpm),
            self._interval_us(tpm),
            tokens,
            mode,
        ]
        return int(self._script(keys=self.keys, args=args))

    def try_acquire(self, tokens: int) -> float:
        """Record one request of ``tokens`` and return 0.0 if both limits allow it now.

        Otherwise record nothing and return the seconds to wait before it would be allowed
        (given current usage; other workers may take the capacity first, so try again then).
        A request larger than a whole minute's token capacity is admitted when the bucket is
        full, and its excess delays later requests.
        """
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        return self._call(tokens, "acquire") / 1_000_000

    def record_tokens(self, extra: int) -> None:
        """Correct the token usage once the actual count is known.

        ``extra`` is actual minus the estimate passed to ``try_acquire``; a negative value
        gives capacity back (never below an empty bucket).
        """
        self._call(extra, "record")
