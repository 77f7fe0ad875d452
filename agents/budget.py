"""One spending ceiling per run, shared by every worker process, in Redis.

Every check-and-update is one Lua script (registered once per instance), so it is atomic across
threads, processes and machines. Keys (``key_prefix`` defaults to ``"harness:"``):

- ``{prefix}budget:{<budget id>}`` (hash), ``...:res`` (reservation id -> "usd:tokens"),
  ``...:settled`` (set of settled reservation ids). Amounts are integers: micro-USD and tokens.
  The budget id is the run's UUID, not its integer id: a fresh database hands out ids 1, 2, …
  again, and a Redis that outlived the old database must not lend the new run its spending.

Every key carries a TTL (a week after the last write); a missing state is rebuilt from the
database by the caller (``runs/run_budget.py``), never assumed empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis

MICRO_USD = 1_000_000
"""Micro-USD per USD: budgets are stored as integers to keep Lua arithmetic exact."""

BUDGET_TTL_SECONDS = 7 * 24 * 3600

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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def usd_to_micro(usd: float) -> int:
    """Convert USD to integer micro-USD, rounding up so estimates stay upper bounds.

    The inner ``round`` absorbs float noise (0.0035 * 1e6 == 3500.0000000000005 must be 3500).
    """
    if usd < 0:
        raise ValueError(f"amount must be >= 0, got {usd}")
    return math.ceil(round(usd * MICRO_USD, 3))


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
        return bool(self._rebuild(keys=self.keys, args=args) == 1)

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
        return bool(result == 1)

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
        return bool(result == 1)

    def release(self, reservation_id: str) -> None:
        """Drop an unsettled reservation (the call failed before spending). Idempotent."""
        self._release(keys=self.keys, args=[self.budget_id, reservation_id])

    def exhaust(self) -> None:
        """Mark the budget exhausted: every later ``reserve`` is refused."""
        with self.client.pipeline() as pipe:
            pipe.hset(self.keys[0], "ex", 1)
            pipe.expire(self.keys[0], self.ttl_seconds)
            pipe.execute()

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
