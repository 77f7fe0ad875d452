"""The Celery app. Settings come from Django settings (CELERY_* names); tasks: runs/tasks.py."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from harness_site.telemetry import setup_telemetry, shutdown_telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")

app = Celery("harness")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Every installed app's tasks module (the worker's tasks live in runs/tasks.py).
app.autodiscover_tasks()


@worker_process_init.connect
def _start_telemetry_in_child(**_: object) -> None:
    # Exporters hold threads and sockets: they must be created after the prefork fork.
    setup_telemetry(component="worker")


@worker_process_shutdown.connect
def _flush_telemetry(**_: object) -> None:
    shutdown_telemetry()
