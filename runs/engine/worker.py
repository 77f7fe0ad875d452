"""One agent, as run by the Celery task ``run_agent``.

claim (conditional update) → provider slot → call the provider (budget reserved and settled per
call by the runtime) → store results → release. Transient errors are retried with exponential
backoff and full jitter through a new Celery message, never by sleeping while holding a slot;
permanent errors fail only this task. A redelivered task (its worker was killed) re-claims a
``running`` task and resumes from its stored steps. Every state change is an action in
``runs.actions.outcomes``; this module only decides which.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from opentelemetry.trace import Span, Status, StatusCode

from agents import semconv
from agents.contract import (
    AgentCancelled,
    AgentRequest,
    AgentResult,
    AllowanceExhausted,
    BudgetExhausted,
    Provider,
    ProviderError,
    ProviderRateLimited,
    RateLimited,
)
from agents.judging.plan import JUDGE_STEPS
from agents.latency import agent_latency_ms
from agents.limits import LeaseSemaphore
from agents.playbooks import REPORT_STEPS, Playbook, report_step_spec, worker_role
from agents.providers.catalog import concurrency_cap, get_provider
from agents.snapshot import open_snapshot
from agents.spans import (
    OFFLINE_PROVIDER,
    agent_identity,
    error_type,
    set_cost,
    usage_attributes,
)
from harness_site.logfilters import redact
from harness_site.redis_client import get_redis
from harness_site.telemetry import get_tracer, parent_context
from runs.actions import group_commit
from runs.actions.dispatch import has_dependencies
from runs.actions.outcomes import (
    allowance_exhausted,
    budget_exhausted,
    cancel_task,
    fail_task,
    retry_task,
    wait_for_slot,
)
from runs.engine.judge_inputs import judge_inputs
from runs.engine.report_inputs import report_step_inputs
from runs.engine.runtime import AgentRuntime, BudgetWait
from runs.eventlog.event_types import EventType
from runs.models import Event, Run, Task
from runs.observability.tracing import run_trace

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 60.0
SLOT_WAIT_S = 1.0
# An agent whose next call fits the budget only once the calls in flight settle waits this long.
BUDGET_WAIT_S = 1.0
# Tries to hand a claimed agent back when the database went away (about a minute in all).
HAND_BACK_TRIES = 16


@dataclass(frozen=True)
class RetryLater:
    countdown: float
    reason: str


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff; never sooner than the server's Retry-After."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** max(0, attempt - 1)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def execute(task_id: int) -> RetryLater | None:
    """Run one agent. Returns RetryLater when the Celery task should re-send itself.

    The database or Redis may go away at any point (a dropped link, a failover, a restart): the
    message is then re-sent after a backoff instead of lost, and an agent this worker had claimed
    is handed back (retrying, its retry due) once the database answers again, so it never stays
    ``running`` under a live worker that no longer runs it until its lease ends."""
    claimed: list[Task] = []
    try:
        return _execute(task_id, claimed)
    except (DatabaseError, redis.RedisError) as exc:
        # Outside the agent's own error handling (its claim, its provider slot, storing its
        # outcome), or that handling's bookkeeping failed too.
        kind = "database" if isinstance(exc, DatabaseError) else "Redis"
        delay = backoff_delay(1)
        logger.warning("agent %s: %s error (%s), sent again", task_id, kind, type(exc).__name__)
        if claimed:
            _hand_back(claimed[0], delay, f"{kind} error: {type(exc).__name__}")
        return RetryLater(delay, type(exc).__name__)


def _hand_back(task: Task, delay: float, error: str) -> None:
    """Put a claimed agent whose outcome could not be stored back to retrying, trying again
    while the database is away (up to about a minute; past that the lease takes it over)."""
    for attempt in range(HAND_BACK_TRIES):
        close_old_connections()  # this thread's broken connection, if that is what failed
        try:
            retry_task(task, delay=delay, error=error)
            return
        except DatabaseError:
            time.sleep(min(5.0, 0.25 * 2**attempt))
    logger.error("agent %s could not be handed back; its lease will end its hold", task.pk)


def _execute(task_id: int, claimed: list[Task]) -> RetryLater | None:
    # The agent's row, its run and its parent's span id come with its claim (one read and one
    # claim for the agents this process starts together: ``runs.actions.claims``).
    claim = group_commit.claim(task_id)
    task = claim.task
    if task is None or task.is_terminal:
        return None
    run = task.run
    if claim.stopped:
        if run.status == Run.Status.BUDGET_EXHAUSTED:
            budget_exhausted(task, "the run's budget was already exhausted")
        else:
            cancel_task(task, f"run {run.status}")
        return None
    if not claim.won:
        if task.status == Task.Status.RUNNING:
            # A live holder has it: look again after its lease, in case it dies.
            return RetryLater(settings.HARNESS_AGENT_LEASE_S, "held by a live worker")
        return None
    # No earlier holder means no stored steps to replay.
    fresh = claim.fresh
    claimed.append(task)

    playbook = run.resolved_playbook
    try:
        provider = get_provider(task.provider)
    except ProviderError as exc:
        fail_task(task, redact(str(exc)))
        return None

    holder = f"task:{task.pk}"
    slot = _provider_slot(task.provider)
    if slot is not None and not slot.acquire(holder):
        # Every slot of this provider is busy across all runs: wait without holding one.
        wait_for_slot(task)
        return RetryLater(SLOT_WAIT_S * random.uniform(1, 2), "provider slots busy")
    try:
        result = _call(task, provider, playbook, slot, holder, fresh=fresh)
    except AllowanceExhausted as exc:
        allowance_exhausted(task, exc.scope, str(exc))
        return None
    except BudgetExhausted as exc:
        budget_exhausted(task, str(exc))
        return None
    except BudgetWait as exc:
        delay = BUDGET_WAIT_S * random.uniform(1, 2)
        retry_task(task, delay=delay, error=str(exc), rate_limited=True)
        return RetryLater(delay, str(exc))
    except AgentCancelled as exc:
        cancel_task(task, str(exc))
        return None
    except ProviderRateLimited as exc:
        message = redact(str(exc))
        waits = _provider_waits(task)
        if waits >= settings.HARNESS_PROVIDER_429_LIMIT:
            # A provider that only ever says "slow down" (a quota it does not call a quota, a
            # key throttled to nothing) would keep the run alive forever.
            fail_task(task, f"{message} (gave up after {waits} rate-limited waits)")
            return None
        delay = (exc.retry_after or SLOT_WAIT_S) + random.uniform(0, 0.5)
        retry_task(task, delay=delay, error=message, rate_limited=True)
        return RetryLater(delay, message)
    except RateLimited as exc:
        delay = (exc.retry_after or SLOT_WAIT_S) + random.uniform(0, 0.5)
        retry_task(task, delay=delay, rate_limited=True)
        return RetryLater(delay, str(exc))
    except ProviderError as exc:
        message = redact(str(exc))
        if exc.permanent or task.attempts >= task.max_attempts:
            suffix = "" if exc.permanent else f" (gave up after {task.attempts} attempts)"
            fail_task(task, message + suffix)
            return None
        delay = backoff_delay(task.attempts, exc.retry_after)
        retry_task(task, delay=delay, error=message)
        return RetryLater(delay, message)
    except (DatabaseError, redis.RedisError) as exc:
        # A deadlock victim, a dropped connection or Redis away for a moment (a budget settle,
        # a provider slot) is transient: the next attempt replays the calls already stored, so
        # nothing is paid twice and their cost is settled then. If even this bookkeeping fails,
        # ``execute`` hands the agent back once the database answers again.
        kind = "database" if isinstance(exc, DatabaseError) else "Redis"
        logger.warning("agent %s hit a %s error: %s", task.pk, kind, type(exc).__name__)
        delay = backoff_delay(task.attempts)
        retry_task(task, delay=delay, error=f"{kind} error: {type(exc).__name__}")
        return RetryLater(delay, type(exc).__name__)
    except Exception as exc:  # an unexpected bug fails this task only, never the worker
        logger.exception("agent %s crashed", task.pk)
        fail_task(task, redact(f"{type(exc).__name__}: {exc}"))
        return None
    finally:
        if slot is not None:
            slot.release(holder)

    group_commit.complete(task, result, playbook)
    return None


def _provider_waits(task: Task) -> int:
    """How many times the provider told this agent to slow down (its 429s, as recorded)."""
    return Event.objects.filter(
        task=task, type=EventType.TASK_RATE_LIMITED, payload__reason__icontains="HTTP 429"
    ).count()


def _provider_slot(provider: str) -> LeaseSemaphore | None:
    """The provider's concurrency cap across all runs and workers (None: uncapped)."""
    cap = concurrency_cap(provider)
    if not cap:
        return None
    return LeaseSemaphore(
        get_redis(),
        f"provider:{provider}",
        cap,
        lease_seconds=settings.HARNESS_CALL_TIMEOUT_S * 2,
        key_prefix=settings.HARNESS_REDIS_PREFIX,
    )


def _call(
    task: Task,
    provider: Provider,
    playbook: Playbook,
    slot: LeaseSemaphore | None,
    holder: str,
    *,
    fresh: bool,
) -> AgentResult:
    """The provider's agent loop inside the task's ``invoke_agent`` span."""
    run = task.run
    report_step = task.step in REPORT_STEPS
    if report_step:
        spec = report_step_spec(playbook, task.step)
    else:
        spec = playbook.roles.get(task.role) or playbook.roles[worker_role(playbook)]
    inputs = _inputs(task, playbook)
    sent: dict[str, object] = {}
    if report_step:
        report, sent = report_step_inputs(task)
        inputs.update(report)
    runtime = AgentRuntime(
        task,
        provider_kind=getattr(provider, "kind", task.provider),
        slot=slot,
        holder=holder,
        fresh=fresh,
    )
    runtime.settle_stored_steps()
    request = AgentRequest(
        run_id=run.pk,
        task_id=task.pk,
        task_key=task.key,
        step=task.step,
        lens=task.lens,
        scope=task.scope,
        model=task.model or _default_model(provider),
        snapshot=open_snapshot(run.snapshot_ref),
        allowed_tools=list(spec.tools) + (["spawn_subagent"] if spec.can_spawn else []),
        max_tokens=spec.max_tokens,
        depth=task.depth,
        can_spawn=spec.can_spawn and task.depth < run.max_depth,
        latency_ms=agent_latency_ms(
            run.latency_ms, float(playbook.options.get("latency_sigma") or 0), task.key
        ),
        timeout_s=settings.HARNESS_CALL_TIMEOUT_S,
        inputs=inputs,
        context=runtime,
        max_steps=spec.max_steps,
        max_children=run.max_children,
        agent_name=task.role,
        conversation_id=str(run.uid),
    )
    trace_id, root_span_id = run_trace(run)
    parent_span = str(getattr(task, "parent_span", None) or "")
    provider_name = str(getattr(provider, "name", task.provider))
    offline = provider_name == OFFLINE_PROVIDER
    with get_tracer().start_as_current_span(
        f"invoke_agent {task.role}",
        context=parent_context(trace_id, parent_span or root_span_id),
        record_exception=False,  # exception messages may quote the target or a server's reply
        set_status_on_exception=False,
        attributes={
            semconv.OPERATION: semconv.OP_AGENT,
            semconv.PROVIDER: provider_name,
            **agent_identity(request),
            semconv.REQUEST_MODEL: request.model,
            semconv.TASK_ID: task.pk,
        },
    ) as span:
        # Written with the agent's outcome (one transaction fewer per agent); its children,
        # the only readers, are created in that same transaction.
        task.span_id = f"{span.get_span_context().span_id:016x}"
        if settings.HARNESS_CAPTURE_CONTENT:  # the scope may name the target's files
            asked = {"step": task.step, "lens": task.lens, "scope": task.scope}
            span.set_attribute(semconv.INPUT_VALUE, json.dumps(asked, default=str)[:4000])
            span.set_attribute(semconv.INPUT_MIME, semconv.JSON_MIME)
        try:
            result = provider.run_agent(request)
        except (BudgetWait, RateLimited) as exc:
            # A wait, not a failure: the agent comes back when budget or rate allows.
            span.add_event("wait", {"harness.wait": type(exc).__name__})
            set_cost(span, *runtime.spent(), offline=offline)
            _set_allowance(span, runtime)
            raise
        except BaseException as exc:
            span.set_attribute(semconv.ERROR_TYPE, error_type(exc))
            span.set_status(Status(StatusCode.ERROR, error_type(exc)))
            set_cost(span, *runtime.spent(), offline=offline)
            _set_allowance(span, runtime)
            raise
        if sent:  # what the report agent read, so the report can map its answer back
            result.output.data["sent"] = sent
        span.set_attributes(
            usage_attributes(provider_name, result.usage.input_tokens, result.usage.output_tokens)
        )
        set_cost(span, *runtime.spent(), offline=offline)
        _set_allowance(span, runtime)
        if settings.HARNESS_CAPTURE_CONTENT:
            findings = [f.model_dump(mode="json") for f in result.output.findings]
            span.set_attribute(semconv.OUTPUT_VALUE, json.dumps(findings)[:4000])
            span.set_attribute(semconv.OUTPUT_MIME, semconv.JSON_MIME)
    return result


def _set_allowance(span: Span, runtime: AgentRuntime) -> None:
    """The agent's allowance on its span (``harness.allowance.usd``), once it has one."""
    if runtime.allowance_usd is not None:
        span.set_attribute(semconv.ALLOWANCE_USD, float(runtime.allowance_usd))


def _default_model(provider: object) -> str:
    getter = getattr(provider, "default_model", None)
    return str(getter()) if callable(getter) else ""


def _inputs(task: Task, playbook: Playbook) -> dict[str, object]:
    inputs: dict[str, object] = {"options": playbook.options}
    if task.step in JUDGE_STEPS:  # the candidates it judges, not the generic outputs
        inputs.update(judge_inputs(task))
        return inputs
    if not has_dependencies(task.run):
        return inputs
    deps = list(task.depends_on.filter(status=Task.Status.SUCCEEDED).order_by("id"))
    if deps:
        inputs["dependency_outputs"] = [dep.output.get("data", {}) for dep in deps]
        inputs["dependency_summaries"] = [dep.summary for dep in deps]
    return inputs
