from django.apps import AppConfig

from harness_site.telemetry import register_span_processor


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Spans of a run are stored for the dashboard in every process that makes them. The
        # processor writes models, which can only be imported once the app registry is ready.
        from runs.observability.span_store import (
            DatabaseSpanProcessor,  # architecture: allow models load in ready()
        )

        register_span_processor(DatabaseSpanProcessor)
