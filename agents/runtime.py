"""The runtime side of one agent: implements ``AgentContext`` for providers.

Every model and tool call becomes a ``Step`` row (so a redelivered agent replays instead of
paying again), every model call reserves budget before and settles after, and cancellation is
checked between steps. Budget reservation ids are ``t{task}:s{index}`` inside the run's own
budget (named by the run's UUID): a redelivered agent that was killed mid-call re-uses its
reservation rather than leaking it.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from agents.limits import Budget, BudgetNotInitialized, LeaseSemaphore
from agents.pricing import estimate_cost_upper_bound, price_call
from agents.contract import AgentCancelled, BudgetExhausted, Usage
from harness_site.redis_client import get_redis
from runs.events import record_event
from runs.models import Run, Step, Task

logger = logging.getLogger(__name__)


def budget_for(run: Run) -> Budget:
    return Budget(get_redis(), run.uid.hex, key_prefix=settings.HARNESS_REDIS_PREFIX)


def step_reservation_id(task_id: int, index: int) -> str:
    return f"t{task_id}:s{index}"


def rebuild_budget(run: Run) -> bool:
    """Write the run's budget state from the database unless Redis already holds it.

    Spent = every stored model call of the run (finished or not: a step is stored before it is
    settled, and a failed agent's calls were paid for too), and those calls' reservation ids
    are marked settled so a late settle of one of them counts once. Called at planning and
    whenever a worker finds the state missing (expired, Redis restarted) or foreign.
    """
    chat = Step.objects.filter(task__run=run, kind="chat")
    totals = chat.aggregate(usd=Sum("cost_usd"), tokens=Sum(F("tokens_in") + F("tokens_out")))
    settled = [step_reservation_id(t, i) for t, i in chat.values_list("task_id", "index")]
    return budget_for(run).rebuild(
        float(run.budget_usd) if run.budget_usd is not None else None,
        int(run.budget_tokens) if run.budget_tokens is not None else None,
        spent_usd=float(totals["usd"] or 0),
        spent_tokens=int(totals["tokens"] or 0),
        settled_ids=settled,
        exhausted=run.status == Run.Status.BUDGET_EXHAUSTED,
    )


def provider_semaphore(provider: str, limit: int, lease_seconds: float) -> LeaseSemaphore:
    return LeaseSemaphore(
        get_redis(),
        f"provider:{provider}",
        limit,
        lease_seconds=lease_seconds,
        key_prefix=settings.HARNESS_REDIS_PREFIX,
    )


class AgentRuntime:
    """AgentContext for one Task attempt."""

    def __init__(
        self,
        task: Task,
        *,
        provider_kind: str,
        slot: LeaseSemaphore | None = None,
        holder: str = "",
    ) -> None:
        self.task = task
        self.run_id = task.run_id
        self.provider_kind = provider_kind
        self.budget = budget_for(task.run)
        self.slot = slot
        self.holder = holder
        self._stored: dict[int, Step] = {s.index: s for s in task.steps.all()}

    def _rid(self, index: int) -> str:
        return step_reservation_id(self.task.pk, index)

    # -- AgentContext -------------------------------------------------------------------------
    def replay(self, index: int) -> dict[str, Any] | None:
        step = self._stored.get(index)
        return None if step is None else dict(step.data)

    def heartbeat(self) -> None:
        Task.objects.filter(pk=self.task.pk).update(heartbeat_at=timezone.now())

    def check_cancelled(self) -> None:
        self.heartbeat()
        status = Run.objects.filter(pk=self.run_id).values_list("status", flat=True).first()
        if status in (Run.Status.CANCELLED, Run.Status.FAILED, None):
            raise AgentCancelled(f"run {self.run_id} is {status or 'gone'}")

    def before_call(self, index: int, *, model: str, input_tokens: int, output_tokens: int) -> None:
        self.check_cancelled()
        if self.slot is not None:
            self.slot.renew(self.holder)
        estimate = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        usd = estimate_cost_upper_bound(self.provider_kind, self.task.provider, model, estimate)
        tokens = input_tokens + output_tokens
        try:
            reserved = self.budget.reserve(self._rid(index), float(usd), tokens)
        except BudgetNotInitialized:
            # Keys expire a week after the last write, and Redis may have restarted empty: the
            # state comes back from the database (limits, every stored call), never from zero.
            self._reinit_budget()
            reserved = self.budget.reserve(self._rid(index), float(usd), tokens)
        if not reserved:
            raise BudgetExhausted(
                f"the run's budget cannot cover the next call (~${usd:.6f}, {tokens} tokens)"
            )
        with transaction.atomic():
            run = Run.objects.get(pk=self.run_id)
            record_event(
                run,
                "budget.reserved",
                {"step": index, "usd": str(usd), "tokens": tokens, "model": model},
                task=self.task,
            )

    def release_call(self, index: int) -> None:
        self.budget.release(self._rid(index))

    def after_call(
        self,
        index: int,
        *,
        model: str,
        usage: Usage,
        data: dict[str, Any],
        seconds: float,
        name: str = "",
    ) -> None:
        price = price_call(self.provider_kind, self.task.provider, model, usage)
        cost = price.cost_usd if price.cost_usd is not None else Decimal(0)
        step = self._store(
            Step(
                task=self.task,
                index=index,
                kind="chat",
                name=name or f"chat {model}",
                data=data,
                tokens_in=usage.input_tokens,
                tokens_out=usage.output_tokens,
                cost_usd=cost,
                price_version=price.version,
                unpriced=price.unpriced,
                seconds=seconds,
            ),
            "budget.settled",
            {
                "step": index,
                "model": model,
                "usd": str(cost),
                "unpriced": price.unpriced,
                "tokens": {"input": usage.input_tokens, "output": usage.output_tokens},
                "price_version": price.version,
            },
        )
        # Settle after the step is stored: a crash in between is repaired by the redelivered
        # agent, which finds the stored step and settles again (settle is idempotent per id).
        self._settle(step)

    def tool_step(
        self,
        index: int,
        *,
        name: str,
        arguments: dict[str, Any],
        result: dict[str, Any],
        seconds: float,
    ) -> None:
        refused = bool(result.get("refused"))
        self._store(
            Step(
                task=self.task,
                index=index,
                kind="tool",
                name=name,
                data={"arguments": arguments, "result": result},
                seconds=seconds,
            ),
            "tool.refused" if refused else "tool.called",
            {"step": index, "tool": name, "reason": result.get("reason", "") if refused else ""},
        )

    # -- helpers ------------------------------------------------------------------------------
    def _store(self, step: Step, event_type: str, payload: dict[str, Any]) -> Step:
        try:
            self.heartbeat()
            with transaction.atomic():
                step.save()
                run = Run.objects.get(pk=self.run_id)
                record_event(run, event_type, payload, task=self.task)
        except IntegrityError:
            # A duplicate delivery of this agent stored the same step first: keep that one.
            step = Step.objects.get(task=self.task, index=step.index)
        self._stored[step.index] = step
        return step

    def _reinit_budget(self) -> None:
        rebuild_budget(Run.objects.get(pk=self.run_id))

    def _settle(self, step: Step) -> None:
        args = (self._rid(step.index), float(step.cost_usd), step.tokens_in + step.tokens_out)
        try:
            self.budget.settle(*args)
        except BudgetNotInitialized:
            # The rebuilt state counts this step already (it is stored); settling again after
            # the rebuild is a no-op then, and counts it if another worker rebuilt first.
            self._reinit_budget()
            self.budget.settle(*args)

    def settle_stored_steps(self) -> None:
        """Re-settle every stored chat step (idempotent) — repairs a crash between store and
        settle in an earlier attempt."""
        for step in self._stored.values():
            if step.kind == "chat":
                self._settle(step)
