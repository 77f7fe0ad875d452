"""One spending ceiling per run, shared by every worker process, in Redis.

Every check-and-update is one Lua script (``agents.budget_lua``, registered once per instance),
so it is atomic across threads, processes and machines. Keys (``key_prefix`` defaults to
``"harness:"``):

- ``{prefix}budget:{<budget id>}`` (hash), ``...:res`` (reservation id -> "usd:tokens"),
  ``...:settled`` (set of settled reservation ids), ``...:a:<scope>`` (one hash per subtree
  with an allowance: an agent, a planner group; ``agents.budget_scope_lua``). Amounts are
  integers: micro-USD and tokens.
  The budget id is the run's UUID, not its integer id: a fresh database hands out ids 1, 2, …
  again, and a Redis that outlived the old database must not lend the new run its spending.

Every key carries a TTL (a week after the last write); a missing state is rebuilt from the
database by the caller (``runs/run_budget.py``), never assumed empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from agents import budget_lua, budget_scope_lua

MICRO_USD = 1_000_000
"""Micro-USD per USD: budgets are stored as integers to keep Lua arithmetic exact."""

BUDGET_TTL_SECONDS = 7 * 24 * 3600


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
    """Snapshot of one run's budget. Limits are None when unlimited. ``calls`` settled calls
    reported ``output_tokens`` output tokens in all (the running average of a call's output)."""

    limit_usd: float | None
    limit_tokens: int | None
    spent_usd: float
    spent_tokens: int
    reserved_usd: float
    reserved_tokens: int
    exhausted: bool
    calls: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Grant:
    """What ``reserve_call`` gave one call. ``reserved``: the call may spend up to ``micro_usd``
    and ``tokens``; ``wait``: it would fit once the run's calls in flight settle; ``exhausted``:
    it cannot fit even with nothing in flight, or the budget was marked exhausted. ``scope``
    names the subtree whose allowance refused it ("" for the run's own budget); ``carved`` is
    True when this call gave the agent its allowance (its first call)."""

    outcome: Literal["reserved", "wait", "exhausted"]
    micro_usd: int = 0
    tokens: int = 0
    scope: str = ""
    carved: bool = False


@dataclass(frozen=True, slots=True)
class Carve:
    """How an agent's allowance is cut from its parent's at its first call: ``share`` (a
    ``weight`` out of the parent's pool of weights), ``fixed`` (``micro_usd``/``tokens``, at most
    what the parent has room for; -1: no limit in that unit) or ``none`` (no allowance of its
    own: only its ancestors limit it)."""

    mode: Literal["none", "share", "fixed"] = "none"
    weight: int = 0
    micro_usd: int = -1
    tokens: int = -1

    def args(self) -> list[int]:
        return [
            {"none": 0, "share": 1, "fixed": 2}[self.mode],
            self.weight,
            self.micro_usd,
            self.tokens,
        ]


_OUTCOMES: dict[int, Literal["reserved", "wait", "exhausted"]] = {
    1: "reserved",
    2: "wait",
    0: "exhausted",
}


class Budget:
    """One spending ceiling per run, in micro-USD and tokens, shared by every worker.

    Protocol per model call: ``reserve_call(rid, upper bound, likely size)`` grants the upper
    bound when it fits, else what is left as long as that covers the likely size, and the call's
    output is capped to the grant (``agents.budget_calls``); on refusal do not call the model
    (wait, or stop spawning/dispatching). After the call ``settle(rid, actual_usd,
    actual_tokens, output_tokens)``, or ``release(rid)`` if the call failed before spending
    anything. ``rid`` must identify one call *attempt*: a retried call that may bill again needs
    a fresh id, otherwise its settle is ignored as a duplicate.

    ``budget_id`` must be unique per run and deployment (the run's UUID): it names the keys and
    is stored inside the state, and every script treats a state carrying another id as missing.

    Invariant: ``spent + reserved <= limit`` after every reservation, so ``spent <= limit``
    holds as long as no call costs more than it was granted. ``settle`` never clamps: if a
    reservation was too small, the overrun is recorded honestly.
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
        self._rebuild = client.register_script(budget_lua.REBUILD)
        self._reserve = client.register_script(budget_scope_lua.RESERVE_CALL)
        self._settle = client.register_script(budget_scope_lua.SETTLE)
        self._release = client.register_script(budget_scope_lua.RELEASE)

    def scope_key(self, scope: str) -> str:
        """The hash of one subtree's allowance (in the run's hash slot, like its state)."""
        return f"{self.keys[0]}:a:{scope}"

    def _chain(self, chain: Sequence[str]) -> list[str]:
        return [*self.keys, *(self.scope_key(s) for s in chain)]

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
        calls: int = 0,
        output_tokens: int = 0,
    ) -> bool:
        """Write the state from the system of record, unless a state of this budget exists.

        ``spent_*`` must be everything already paid for and ``settled_ids`` the reservation ids
        of those calls, so a late ``settle`` of one of them is not counted twice; ``calls`` and
        ``output_tokens`` are how many of them there were and what they output (the running
        average). Pending reservations are not known to the database and start at zero. A
        state left under the same keys by another budget id is replaced. Returns True if it
        wrote the state.
        """
        if limit_tokens is not None and limit_tokens < 0:
            raise ValueError("limit_tokens must be >= 0 or None")
        if spent_tokens < 0 or calls < 0 or output_tokens < 0:
            raise ValueError("spent_tokens, calls and output_tokens must be >= 0")
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
            calls,
            output_tokens,
            *settled_ids,
        ]
        return bool(self._rebuild(keys=self.keys, args=args) == 1)

    def reserve_call(
        self,
        reservation_id: str,
        *,
        micro_usd: int,
        tokens: int,
        min_micro_usd: int,
        min_tokens: int,
        chain: Sequence[str] = (),
        carve: Carve | None = None,
    ) -> Grant:
        """Atomically reserve for one call: its upper bound (``micro_usd``, ``tokens``) if that
        fits both limits, else what is left of them as long as that covers at least
        ``min_micro_usd`` and ``min_tokens`` (the call's likely size).

        ``chain`` names the calling agent's scope and then its ancestors' (``agents.
        budget_scopes``): the call must also fit each one's allowance, and reserves at every
        level in the same script. An agent scope not carved yet is carved first by ``carve``.

        Idempotent per ``reservation_id``: a pending id returns its standing grant without
        reserving again, an already-settled one is granted in full and reserves nothing. Raises
        BudgetNotInitialized if the state is missing or not this budget's.
        """
        if min(micro_usd, tokens, min_micro_usd, min_tokens) < 0:
            raise ValueError("amounts must be >= 0")
        if min_micro_usd > micro_usd or min_tokens > tokens:
            raise ValueError("the likely size of a call cannot exceed its upper bound")
        args: list[str | int | float] = [
            self.budget_id,
            reservation_id,
            micro_usd,
            tokens,
            min_micro_usd,
            min_tokens,
            *(carve or Carve()).args(),
            self.ttl_seconds,
        ]
        code, granted_usd, granted_tokens, level, carved = self._reserve(
            keys=self._chain(chain), args=args
        )
        if code == -1:
            raise self._missing()
        # KEYS index 1 is the run's state, 4 and up the chain: name the scope that refused.
        scope = chain[int(level) - 4] if int(level) >= 4 else ""
        return Grant(
            _OUTCOMES[int(code)], int(granted_usd), int(granted_tokens), scope, bool(carved)
        )

    def reserve(self, reservation_id: str, usd: float, tokens: int) -> bool:
        """Reserve exactly ``usd``/``tokens`` if spent + reserved + this fits BOTH limits.

        Returns False (reserving nothing) when it does not fit or the budget is exhausted.
        Idempotent per ``reservation_id``, as ``reserve_call``.
        """
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        micro = usd_to_micro(usd)
        grant = self.reserve_call(
            reservation_id, micro_usd=micro, tokens=tokens, min_micro_usd=micro, min_tokens=tokens
        )
        return grant.outcome == "reserved"

    def settle(
        self,
        reservation_id: str,
        actual_usd: float,
        actual_tokens: int,
        output_tokens: int | None = None,
        chain: Sequence[str] = (),
    ) -> bool:
        """Atomically drop the reservation and add the actual usage to spent.

        Idempotent per ``reservation_id`` (settled ids are remembered): settling twice counts
        once. An unknown (never reserved, or released) id still adds its usage once, so no usage
        is ever lost. Nothing is clamped: actual usage above the reservation is recorded as is.
        ``output_tokens`` (how many of ``actual_tokens`` the call output) feeds the running
        average a call's likely size is estimated from. ``chain`` must be the one the call was
        reserved with: every level counts the usage. Returns True if this call counted it.
        """
        if actual_tokens < 0 or (output_tokens is not None and output_tokens < 0):
            raise ValueError("actual_tokens and output_tokens must be >= 0")
        args: list[str | int | float] = [
            self.budget_id,
            reservation_id,
            usd_to_micro(actual_usd),
            actual_tokens,
            -1 if output_tokens is None else output_tokens,
            self.ttl_seconds,
        ]
        result = self._settle(keys=self._chain(chain), args=args)
        if result == -1:
            raise self._missing()
        return bool(result == 1)

    def release(self, reservation_id: str, chain: Sequence[str] = ()) -> None:
        """Drop an unsettled reservation (the call failed before spending) at every level of
        ``chain``. Idempotent."""
        self._release(keys=self._chain(chain), args=[self.budget_id, reservation_id])

    def exhaust(self) -> None:
        """Mark the budget exhausted: every later ``reserve`` is refused."""
        with self.client.pipeline() as pipe:
            pipe.hset(self.keys[0], "ex", 1)
            pipe.expire(self.keys[0], self.ttl_seconds)
            pipe.execute()

    def _fields(self) -> list[int]:
        raw: list[Any] = self.client.hmget(
            self.keys[0], ["id", "lu", "lt", "su", "st", "ru", "rt", "ex", "nc", "so"]
        )
        if raw[0] is None or _text(raw[0]) != self.budget_id:
            raise self._missing()
        return [int(_text(v or b"0")) for v in raw[1:]]

    def state(self) -> BudgetState:
        """Consistent snapshot (one HMGET) of limits, spent, reserved, the exhausted flag and
        the settled calls' output."""
        lu, lt, su, st, ru, rt, ex, nc, so = self._fields()
        return BudgetState(
            limit_usd=None if lu < 0 else lu / MICRO_USD,
            limit_tokens=None if lt < 0 else lt,
            spent_usd=su / MICRO_USD,
            spent_tokens=st,
            reserved_usd=ru / MICRO_USD,
            reserved_tokens=rt,
            exhausted=ex == 1,
            calls=nc,
            output_tokens=so,
        )
