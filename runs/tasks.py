"""Celery tasks: thin wrappers that take ids and call the actions and the worker.

At-least-once delivery is assumed everywhere (acks late, reject on worker lost): each body is
idempotent. The names are sent by ``runs.actions.enqueue``; keep the two in step.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_ready, worker_shutdown
from django.conf import settings

from harness_site import liveness
from harness_site.celery import tasks_run_in_this_process
from runs.actions import enqueue, group_commit, trace_end, webhook_delivery
from runs.actions.dispatch import dispatch
from runs.actions.outcomes import fail_task
from runs.actions.planning import plan_run as _plan_run
from runs.actions.report import aggregate
from runs.engine import sweeper, worker
from runs.eventlog.hooks import WEBHOOK_EVENTS
from runs.models import Task
from runs.observability import otel_gauges
from runs.observability.span_store import batch_spans


@worker_init.connect
def _worker_settings(sender: object = None, **_: object) -> None:
    # When agents run on this process's threads they end by the hundred a second: their spans
    # go to the database in batches and their outcomes by group commit. A prefork child runs one
    # task at a time and Celery closes its whole connection pool at every task's boundary, under
    # a background writer's feet (spans lost): there each span is stored as it ends, in the
    # task's own connection.
    if tasks_run_in_this_process(sender):
        batch_spans()
        group_commit.start()
        # Alive from the start, not from its first claim (a prefork child makes its own).
        liveness.me()


@worker_ready.connect
def _start_sweeper(sender: object = None, **_: object) -> None:
    # Every worker runs the sweeper thread; a Redis lease lets one of them sweep each period.
    # Likewise one of them reports the OTLP gauges.
    otel_gauges.register()
    if settings.HARNESS_SWEEP_S > 0:
        sweeper.start(str(getattr(sender, "hostname", "worker")))


@worker_shutdown.connect
def _stop_sweeper(**_: object) -> None:
    sweeper.stop()


@shared_task(name=enqueue.PLAN_RUN, acks_late=True)
def plan_run(run_id: int) -> None:
    _plan_run(run_id)


@shared_task(name=enqueue.DISPATCH_RUN, acks_late=True)
def dispatch_run(run_id: int) -> None:
    dispatch(run_id)


# Celery takes its time limits in seconds as floats; its stubs say int.
@shared_task(  # type: ignore[call-overload, untyped-decorator]
    name=enqueue.RUN_AGENT,
    acks_late=True,
    soft_time_limit=settings.HARNESS_AGENT_TIMEOUT_S,
    time_limit=settings.HARNESS_AGENT_TIMEOUT_S + 30,
)
def run_agent(task_id: int) -> None:
    try:
        retry = worker.execute(task_id)
    except SoftTimeLimitExceeded:
        task = Task.objects.get(pk=task_id)
        fail_task(task, f"agent timed out after {settings.HARNESS_AGENT_TIMEOUT_S:.0f}s")
        return
    if retry is not None:
        run_agent.apply_async((task_id,), countdown=retry.countdown)


@shared_task(name=enqueue.AGGREGATE_RUN, acks_late=True)
def aggregate_run(run_id: int) -> None:
    aggregate(run_id)


@shared_task(name=WEBHOOK_EVENTS, acks_late=True)
def webhook_events(announced: list[list[object]]) -> None:
    webhook_delivery.fan_out(announced)


@shared_task(name=enqueue.END_RUN_TRACE, acks_late=True)
def end_run_trace(run_id: int) -> None:
    countdown = trace_end.end_trace_when_settled(run_id)
    if countdown is not None:
        end_run_trace.apply_async((run_id,), countdown=countdown)


@shared_task(name=enqueue.DELIVER_WEBHOOK, acks_late=True)
def deliver_webhook(delivery_id: int) -> None:
    countdown = webhook_delivery.attempt(delivery_id)
    if countdown is not None:
        deliver_webhook.apply_async((delivery_id,), countdown=countdown)
