"""Limits shared by every worker process: provider concurrency and request/token rates, in Redis.

Every check-and-update is one Lua script (registered once per instance with
``client.register_script``), so it is atomic across threads, processes and machines. Clocks come
from Redis ``TIME`` inside the scripts: worker clocks may drift, the limits do not.

Keys (``key_prefix`` defaults to ``"harness:"``; tests pass a unique prefix):

- ``{prefix}sem:{name}``: sorted set, member = holder id, score = lease expiry (µs).
- ``{prefix}rate:{<name>}:req`` / ``:tok``: GCRA theoretical arrival times (µs).

Every key carries a TTL, so dead holders leave nothing behind for long. The run's spending
ceiling is ``agents.budget``.
"""

from __future__ import annotations

import redis

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
