"""The Celery app. Settings come from Django settings (CELERY_* names); tasks: runs/tasks.py."""

from __future__ import annotations

import os

from celery import Celery
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings

from harness_site import kombu_guard, workers
from harness_site.telemetry import setup_telemetry, shutdown_telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")

# Before any broker connection: a worker must survive Redis restarting (see kombu_guard).
kombu_guard.install()

app = Celery("harness")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Every installed app's tasks module (the worker's tasks live in runs/tasks.py).
app.autodiscover_tasks()


@worker_init.connect
def _worker_start(**_: object) -> None:
    # With DEBUG on, Django formats and keeps every query a worker runs (each agent makes a
    # dozen, under the database's write lock): a memory leak, and CPU spent holding that lock.
    # Celery's own documentation says never to run a worker with it; the web process keeps it.
    settings.DEBUG = False


@worker_ready.connect
def _advertise_slots(sender: object = None, **_: object) -> None:
    # The pool's size: threads (one agent each) or processes.
    controller = getattr(sender, "controller", None)
    slots = int(getattr(controller, "concurrency", 0) or 0)
    hostname = str(getattr(sender, "hostname", "") or "")
    if slots and hostname:
        workers.advertise(hostname, slots)


@worker_shutdown.connect
def _withdraw_slots(sender: object = None, **_: object) -> None:
    hostname = str(getattr(sender, "hostname", "") or "")
    if hostname:
        workers.withdraw(hostname)


@worker_process_init.connect
def _start_telemetry_in_child(**_: object) -> None:
    # Exporters hold threads and sockets: they must be created after the prefork fork.
    setup_telemetry(component="worker")


def tasks_run_in_this_process(worker: object) -> bool:
    """True for the threads and solo pools (tasks run in the worker's own process), False for
    prefork (each task in a forked child)."""
    pool = get_implementation(getattr(worker, "pool_cls", None) or "prefork")
    return not (isinstance(pool, type) and issubclass(pool, PreforkPool))


@worker_init.connect
def _start_telemetry_in_worker(sender: object = None, **_: object) -> None:
    # The threads and solo pools run tasks in this process: start before the first one, so its
    # spans and publishes (Celery's too, when instrumented) already belong to the run's trace.
    if tasks_run_in_this_process(sender):
        setup_telemetry(component="worker")


@worker_shutdown.connect
@worker_process_shutdown.connect
def _flush_telemetry(**_: object) -> None:
    # Prefork children flush at their own shutdown; the threads pool at the worker's.
    shutdown_telemetry()
