"""The runtime side of one agent: implements ``AgentContext`` for providers.

Every model and tool call becomes a ``Step`` row (so a redelivered agent replays instead of
paying again), every model call reserves budget before and settles after, and cancellation is
checked between steps. Budget reservation ids are ``t{task}:s{index}`` inside the run's own
budget (named by the run's UUID): a redelivered agent that was killed mid-call re-uses its
reservation rather than leaking it.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from agents.budget import MICRO_USD, BudgetNotInitialized, Grant, usd_to_micro
from agents.budget_calls import CallSize, PriceFn, size_call
from agents.contract import (
    AgentCancelled,
    AllowanceExhausted,
    BudgetExhausted,
    ModelStep,
    ProviderError,
    ToolStep,
    Usage,
)
from agents.limits import LeaseSemaphore
from agents.pricing import estimate_cost_upper_bound, price_call
from runs import allowances
from runs.actions import group_commit
from runs.actions.stored_calls import StoredCall
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Run, Step, Task
from runs.models.task import TRY_SPAN, try_generation
from runs.observability.counters import counters
from runs.run_budget import budget_for, rebuild_budget, step_reservation_id

logger = logging.getLogger(__name__)


# How stale a run's status may be when an agent checks for cancellation. Every agent in flight
# checks between steps (the offline provider every 0.2 s of simulated latency): a hundred
# agents of one run share one read per this period instead of making hundreds a second.
STATUS_TTL_S = 0.5
_statuses: dict[int, tuple[float, str | None]] = {}


def run_status(run_id: int) -> str | None:
    """The run's status as of at most ``STATUS_TTL_S`` ago (None: the run is gone)."""
    now = time.monotonic()
    cached = _statuses.get(run_id)
    if cached is not None and now - cached[0] < STATUS_TTL_S:
        return cached[1]
    status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if len(_statuses) > 1000:  # a long-lived worker sees many runs; forget the old ones
        _statuses.clear()
    _statuses[run_id] = (now, status)
    return status


def release_connection() -> None:
    """Give this thread's database connection back (to the pool on PostgreSQL) before a slow
    model call, so agents in flight do not each hold one. Never inside a transaction."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        connection.close()


class BudgetWait(Exception):
    """The next call fits the budget only once the run's calls in flight have settled: the
    agent waits (a retry that is not a failed attempt), the run goes on."""


class AgentRuntime:
    """AgentContext for one Task attempt."""

    def __init__(
        self,
        task: Task,
        *,
        provider_kind: str,
        slot: LeaseSemaphore | None = None,
        holder: str = "",
        fresh: bool = False,
    ) -> None:
        self.task = task
        self.run_id = task.run_id
        self.provider_kind = provider_kind
        self.budget = budget_for(task.run)
        # The agent's scope and its ancestors' (runs.allowances): every call reserves at each.
        self.chain = allowances.chain_of(task)
        self.carve = allowances.carve_of(task)
        self.allowance_usd: Decimal | None = task.allowance_usd
        self.slot = slot
        self.holder = holder
        # A task never started before this claim has no stored steps: one query fewer.
        # Only this try's steps: replaying or re-settling an earlier try's would pay twice.
        self._stored: dict[int, Step] = (
            {} if fresh else {s.index: s for s in task.steps.filter(index__lt=TRY_SPAN)}
        )
        # Earlier tries' steps sit at TRY_SPAN and above: which try this is names its budget
        # reservations (``step_reservation_id``).
        top = Step.objects.filter(task=task, index__gte=TRY_SPAN).aggregate(top=Max("index"))
        self._generation = try_generation(top["top"])
        self.deadline = time.monotonic() + settings.HARNESS_AGENT_TIMEOUT_S
        # The claim wrote the first heartbeat.
        self._last_beat = time.monotonic()
        self._beat_every = min(10.0, settings.HARNESS_AGENT_LEASE_S / 4)

    def spent(self) -> tuple[Decimal, bool]:
        """(cost in USD, any call unpriced) of this agent's model calls as stored: the same
        steps its outcome totals."""
        chats = [step for step in self._stored.values() if step.kind == "chat"]
        return sum((step.cost_usd for step in chats), Decimal(0)), any(s.unpriced for s in chats)

    def _rid(self, index: int) -> str:
        return step_reservation_id(self.task.pk, index, self._generation)

    # -- AgentContext -------------------------------------------------------------------------
    def replay(self, index: int) -> dict[str, Any] | None:
        step = self._stored.get(index)
        return None if step is None else dict(step.data)

    def heartbeat(self) -> None:
        """Tell the dispatcher this agent is alive. A write, so at most every few seconds: the
        lease it feeds is minutes long, and a hundred agents beating at every step would queue
        on the database's write lock for nothing."""
        now = time.monotonic()
        if now - self._last_beat < self._beat_every:
            return
        self._last_beat = now
        Task.objects.filter(pk=self.task.pk).update(heartbeat_at=timezone.now())

    def check_cancelled(self) -> None:
        self.heartbeat()
        status = run_status(self.run_id)
        if status in (Run.Status.CANCELLED, Run.Status.FAILED, None):
            raise AgentCancelled(f"run {self.run_id} is {status or 'gone'}")
        # The agent's own time limit, checked between steps (a thread cannot be interrupted
        # the way a prefork child can; every model call has its own timeout besides).
        if time.monotonic() > self.deadline:
            limit = settings.HARNESS_AGENT_TIMEOUT_S
            raise ProviderError(f"agent timed out after {limit:.0f}s", permanent=True)

    def before_call(self, index: int, *, model: str, input_tokens: int, output_tokens: int) -> int:
        """Reserve budget for the call (``agents.budget_calls``: its upper bound while that
        fits, else what is left down to its likely size) and return the output tokens it may
        produce: ``output_tokens``, or less when the grant was smaller, so it costs at most
        what it reserved."""
        self.check_cancelled()
        if self.slot is not None:
            self.slot.renew(self.holder)

        def price(tokens_in: int, tokens_out: int) -> Decimal:
            usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
            return estimate_cost_upper_bound(self.provider_kind, self.task.provider, model, usage)

        try:
            grant, size = self._reserve(index, price, input_tokens, output_tokens)
        except BudgetNotInitialized:
            # Keys expire a week after the last write, and Redis may have restarted empty: the
            # state comes back from the database (limits, every stored call), never from zero.
            self._reinit_budget()
            grant, size = self._reserve(index, price, input_tokens, output_tokens)
        if grant.carved or (self.allowance_usd is None and self.carve.mode != "none"):
            # Also when an earlier delivery carved it and died before writing it down.
            self.allowance_usd = allowances.record_carved(self.task, self.chain)
        if grant.outcome != "reserved":
            self._refused(grant, size)
        # Reserved vs settled (harness_model_cost_usd): how far ahead of spend the grants run.
        counters.add("budget_reserved_usd", grant.micro_usd / 1e6, provider=self.task.provider)
        # The reservation is transient (Redis); what the call cost is recorded with its step
        # (budget.settled), so the log keeps every budget movement without a row per reserve.
        release_connection()
        return size.output_cap(grant.micro_usd, grant.tokens)

    def _reserve(
        self, index: int, price: PriceFn, input_tokens: int, output_tokens: int
    ) -> tuple[Grant, CallSize]:
        # The running average may be a moment old: it only sizes the likely call, and the
        # grant itself is checked against the limits in one script.
        state = self.budget.state()
        size = size_call(price, input_tokens, output_tokens, state.calls, state.output_tokens)
        grant = self.budget.reserve_call(
            self._rid(index),
            micro_usd=size.micro_usd,
            tokens=size.tokens,
            min_micro_usd=size.min_micro_usd,
            min_tokens=size.min_tokens,
            chain=self.chain,
            carve=self.carve,
        )
        if grant.outcome == "exhausted" and grant.scope:
            # Its own subtree's money, not the run's: rather than stop an agent whose share
            # covers its prompt but not the run's average answer, grant what is left (down to
            # one output token) and let the output cap cut the answer to what it pays for.
            floor = usd_to_micro(float(price(input_tokens, 1)))
            grant = self.budget.reserve_call(
                self._rid(index),
                micro_usd=size.micro_usd,
                tokens=size.tokens,
                min_micro_usd=min(floor, size.micro_usd),
                min_tokens=min(input_tokens + 1, size.tokens),
                chain=self.chain,
                carve=self.carve,
            )
        return grant, size

    def _refused(self, grant: Grant, size: CallSize) -> NoReturn:
        """A reservation did not fit. While other calls of the run hold reservations (upper
        bounds, usually far above what they will cost) the agent waits for them to settle;
        the budget is exhausted only when even the call's likely size cannot fit with nothing
        in flight (``Budget.reserve_call`` tells which)."""
        counters.add(
            "budget_reservations_refused", provider=self.task.provider, outcome=grant.outcome
        )
        likely = Decimal(size.min_micro_usd) / MICRO_USD
        if grant.outcome == "exhausted" and grant.scope:
            # Only this subtree ran out: its agents stop, the rest of the run goes on.
            raise AllowanceExhausted(grant.scope, self._allowance_words(grant.scope, likely))
        if grant.outcome == "wait":
            raise BudgetWait(
                "waiting for the run's calls in flight to settle: the next call "
                f"(likely ${likely:.6f}) fits the budget once they have"
            )
        raise BudgetExhausted(
            f"the run's budget cannot cover the next call (likely ${likely:.6f}, "
            f"{size.min_tokens} tokens)"
        )

    def _allowance_words(self, scope: str, likely: Decimal) -> str:
        state = allowances.scopes_for(self.task.run).states([scope]).get(scope)
        used = ""
        if state is not None and state.allowance_usd is not None:
            used = f"; ${state.spent_usd:.6f} of ${state.allowance_usd:.6f} spent"
        who = allowances.scope_words(scope, self.task.pk)
        return f"the allowance of {who} cannot cover the next call (likely ${likely:.6f}{used})"

    def release_call(self, index: int) -> None:
        self.budget.release(self._rid(index), chain=self.chain)

    def after_call(self, index: int, call: ModelStep) -> None:
        model, usage = call.model, call.usage
        price = price_call(self.provider_kind, self.task.provider, model, usage)
        # Stored with six decimals: the budget settles the stored figure, so the run's total,
        # its steps and its budget agree to the micro-dollar.
        cost = (price.cost_usd or Decimal(0)).quantize(Decimal("0.000001"))
        new = Step(
            task=self.task,
            index=index,
            kind="chat",
            name=call.name or f"chat {model}",
            data=call.data,
            tokens_in=usage.input_tokens,
            tokens_out=usage.output_tokens,
            cost_usd=cost,
            price_version=price.version,
            unpriced=price.unpriced,
            seconds=call.seconds,
        )
        step = self._store(
            new,
            EventType.BUDGET_SETTLED,
            {
                "step": index,
                "model": model,
                "usd": str(cost),
                "unpriced": price.unpriced,
                "tokens": {"input": usage.input_tokens, "output": usage.output_tokens},
                "price_version": price.version,
            },
        )
        if step is new:  # not a duplicate delivery's call, which the first one counted
            labels = {"provider": self.task.provider, "model": model}
            counters.add("model_calls", **labels)
            counters.add("model_tokens", usage.input_tokens, direction="input", **labels)
            counters.add("model_tokens", usage.output_tokens, direction="output", **labels)
            counters.add("model_cost_usd", float(cost), **labels)
        # Settle after the step is stored: a crash in between is repaired by the redelivered
        # agent, which finds the stored step and settles again (settle is idempotent per id).
        self._settle(step)

    def tool_step(self, index: int, tool: ToolStep) -> None:
        name, result = tool.name, tool.result
        refused = bool(result.get("refused"))
        self._store(
            Step(
                task=self.task,
                index=index,
                kind="tool",
                name=name,
                data={"arguments": tool.arguments, "result": result},
                seconds=tool.seconds,
            ),
            EventType.TOOL_REFUSED if refused else EventType.TOOL_CALLED,
            {"step": index, "tool": name, "reason": result.get("reason", "") if refused else ""},
        )

    # -- helpers ------------------------------------------------------------------------------
    def _store(self, step: Step, event_type: EventType, payload: dict[str, Any]) -> Step:
        self.heartbeat()
        # In a worker, with the calls of other agents that end meanwhile (one transaction).
        if group_commit.store_call(StoredCall(step, event_type, payload, self.task)):
            self._stored[step.index] = step
            return step
        # Alone: no committer here, or its batch did not commit (and may have numbered the step).
        step.pk = None
        step._state.adding = True
        try:
            with transaction.atomic():
                step.save()
                # The log needs only the run's id: its seq counter is taken in the UPDATE.
                record_event(Run(pk=self.run_id), event_type, payload, task=self.task)
        except IntegrityError:
            # A duplicate delivery of this agent stored the same step first: keep that one.
            step = Step.objects.get(task=self.task, index=step.index)
        self._stored[step.index] = step
        return step

    def _reinit_budget(self) -> None:
        rebuild_budget(Run.objects.get(pk=self.run_id))

    def _settle(self, step: Step) -> None:
        args = (
            self._rid(step.index),
            float(step.cost_usd),
            step.tokens_in + step.tokens_out,
            step.tokens_out,
        )
        try:
            self.budget.settle(*args, chain=self.chain)
        except BudgetNotInitialized:
            # The rebuilt state counts this step already (it is stored); settling again after
            # the rebuild is a no-op then, and counts it if another worker rebuilt first.
            self._reinit_budget()
            self.budget.settle(*args, chain=self.chain)

    def settle_stored_steps(self) -> None:
        """Re-settle every stored chat step (idempotent) — repairs a crash between store and
        settle in an earlier attempt."""
        for step in self._stored.values():
            if step.kind == "chat":
                self._settle(step)
