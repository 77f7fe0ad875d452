"""Celery tasks: thin wrappers that take ids and call the engine. At-least-once delivery is
assumed everywhere (acks late, reject on worker lost): each body is idempotent."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from agents import engine, outcomes, worker
from agents.planning import plan_run as _plan_run


@shared_task(name="agents.plan_run", acks_late=True)
def plan_run(run_id: int) -> None:
    _plan_run(run_id)


@shared_task(name="agents.dispatch_run", acks_late=True)
def dispatch_run(run_id: int) -> None:
    engine.dispatch(run_id)


@shared_task(
    name="agents.run_agent",
    acks_late=True,
    soft_time_limit=settings.HARNESS_AGENT_TIMEOUT_S,
    time_limit=settings.HARNESS_AGENT_TIMEOUT_S + 30,
)
def run_agent(task_id: int) -> None:
    try:
        retry = worker.execute(task_id)
    except SoftTimeLimitExceeded:
        from runs.models import Task

        task = Task.objects.get(pk=task_id)
        outcomes.fail_task(task, f"agent timed out after {settings.HARNESS_AGENT_TIMEOUT_S:.0f}s")
        return
    if retry is not None:
        run_agent.apply_async((task_id,), countdown=retry.countdown)


@shared_task(name="agents.aggregate_run", acks_late=True)
def aggregate_run(run_id: int) -> None:
    from agents.aggregation.run import aggregate

    aggregate(run_id)
