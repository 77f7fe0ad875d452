"""Allowances of a run's subtrees: the scopes of ``agents.budget_scope_lua`` from Python.

A *scope* is a subtree with an allowance carved from its parent's: a planner group
(``group_scope``: a folder of an audit, a document of a synthesis, a voter of an ensemble) out of
the run's budget, an agent (``task_scope``) out of its group's or its spawner's. Every model call
of an agent is reserved against its own scope and every ancestor's in one script
(``Budget.reserve_call(chain=…)``), so no allowance is ever exceeded at any concurrency; a
finished subtree gives back what it did not use (``close``).

The split rule (``SPLITS``) decides the shares: ``none`` (no allowances: one run-wide ceiling, as
before), ``equal`` (every group, and every agent of a group, the same share) and ``size`` (shares
in proportion to what they read: bytes of their files or document).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.budget import MICRO_USD, Budget
from agents.budget_scope_lua import CARVE, CLOSE, POOL

SPLITS = ("none", "equal", "size")
DEFAULT_SPLIT = "none"
"""``none`` by default: a split pays off only when the budget cannot cover the whole target
(one greedy folder would otherwise leave others unread); when it can, fixed shares leave money
unspent in some subtrees while capping answers in others (measured on the sample app at $0.04:
79 findings without a split, 56 with ``size``). ``size`` is the rule to pick when it pays off:
shares follow what each group reads, so no folder is starved and none takes more than its
share; ``equal`` starves big folders."""


def split_problem(value: object) -> str | None:
    """Why ``value`` is not a split rule (None: it is one)."""
    if value in SPLITS:
        return None
    return f"Budget split must be one of {', '.join(SPLITS)}, not {str(value)[:40]!r}."


WEIGHT_UNIT = 1024
"""Size weights are in KiB, so the products in the scripts stay exact."""

AGENT_OVERHEAD_KIB = 4
"""What an agent costs besides what it reads (its instructions, its answer), in KiB of input:
without it a folder of small files would get a slice too thin for even one agent's prompt."""


def group_scope(group: str) -> str:
    return f"g:{group}"


def task_scope(task_id: int) -> str:
    return f"t{task_id}"


def size_weight(size_bytes: int) -> int:
    return AGENT_OVERHEAD_KIB + -(-size_bytes // WEIGHT_UNIT)


@dataclass(frozen=True, slots=True)
class ScopeState:
    """One scope: allowance (None: no limit of its own), spent and reserved by its subtree, held
    for its open children, and whether it finished (its leftover went back)."""

    allowance_usd: float | None
    allowance_tokens: int | None
    spent_usd: float
    spent_tokens: int
    reserved_usd: float
    held_usd: float
    closed: bool


def _int(value: object, default: int = 0) -> int:
    if value is None:
        return default
    return int(value.decode() if isinstance(value, bytes) else str(value))


class Scopes:
    """The scopes of one run's budget."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        client = budget.client
        self._carve = client.register_script(CARVE)
        self._pool = client.register_script(POOL)
        self._close = client.register_script(CLOSE)

    def _parent_key(self, parent: str | None) -> str:
        return self.budget.keys[0] if parent is None else self.budget.scope_key(parent)

    def carve_share(
        self, scope: str, weight: int, *, parent: str | None = None, pool: int = 0
    ) -> tuple[int, int, bool]:
        """Carve ``scope``'s allowance as the share ``weight`` of its parent's pool (the run
        when ``parent`` is None), and give it a pool of ``pool`` for its own children. Idempotent.
        Returns (micro-USD, tokens, carved now); -1 means no limit."""
        keys = [self.budget.scope_key(scope), self._parent_key(parent)]
        args = [1, weight, -1, -1, pool, self.budget.ttl_seconds]
        lu, lt, now = self._carve(keys=keys, args=args)
        return int(lu), int(lt), bool(now)

    def set_pool(self, pool: int, parent: str | None = None) -> None:
        """Set the run's (or ``parent``'s) pool of weights its children's shares divide."""
        key = self._parent_key(parent)
        self.budget.client.hset(key, "w", pool)

    def add_pool(self, scope: str, weight: int) -> bool:
        """Add ``weight`` to ``scope``'s pool (its spawned children, carved at their first
        call). False when the scope does not exist (its agent never called a model)."""
        return bool(
            self._pool(keys=[self.budget.scope_key(scope)], args=[weight, self.budget.ttl_seconds])
        )

    def close(self, scope: str, parent: str | None = None) -> tuple[int, int]:
        """The subtree ``scope`` finished: give its parent back what it did not use. Returns
        (micro-USD, tokens) given back; (0, 0) if closed already."""
        keys = [self.budget.scope_key(scope), self._parent_key(parent)]
        back_u, back_t = self._close(keys=keys, args=[self.budget.ttl_seconds])
        return int(back_u), int(back_t)

    def states(self, scopes: Iterable[str]) -> dict[str, ScopeState]:
        """The scopes that exist, read in one round trip."""
        names = list(scopes)
        fields = ["lu", "lt", "su", "st", "ru", "ku", "c"]
        with self.budget.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(self.budget.scope_key(name), fields)
            rows = pipe.execute()
        out: dict[str, ScopeState] = {}
        for name, row in zip(names, rows, strict=True):
            if row[0] is None:
                continue
            lu, lt, su, st, ru, ku, closed = (
                _int(v, -1 if i < 2 else 0) for i, v in enumerate(row)
            )
            out[name] = ScopeState(
                allowance_usd=None if lu < 0 else lu / MICRO_USD,
                allowance_tokens=None if lt < 0 else lt,
                spent_usd=su / MICRO_USD,
                spent_tokens=st,
                reserved_usd=ru / MICRO_USD,
                held_usd=ku / MICRO_USD,
                closed=closed == 1,
            )
        return out

    def room_usd(self, scope: str | None = None) -> float | None:
        """What the run (or ``scope``) can still carve or spend itself, in USD (None: no limit)."""
        key = self._parent_key(scope)
        raw = self.budget.client.hmget(key, ["lu", "su", "ru", "ku"])
        lu, su, ru, ku = (_int(v, -1 if i == 0 else 0) for i, v in enumerate(raw))
        return None if lu < 0 else (lu - su - ru - ku) / MICRO_USD

    def rebuild(self, rows: Sequence[tuple[str, dict[str, int]]]) -> None:
        """Write scope hashes from the database's truth (after the run's state was rebuilt):
        ``rows`` of (scope, fields lu, lt, su, st, ku, kt, w, hu, ht, c)."""
        with self.budget.client.pipeline(transaction=True) as pipe:
            for scope, fields in rows:
                key = self.budget.scope_key(scope)
                pipe.delete(key)
                row: dict[Any, Any] = {"ru": 0, "rt": 0, **fields}  # redis-py's key types
                pipe.hset(key, mapping=row)
                pipe.expire(key, self.budget.ttl_seconds)
            pipe.execute()
