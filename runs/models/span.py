from __future__ import annotations

from django.db import models

from runs.models.append_only import AppendOnly, AppendOnlyQuerySet


class Span(AppendOnly):
    """A finished OpenTelemetry span, stored for the dashboard's timeline and audit."""

    trace_id = models.CharField(max_length=32, db_index=True)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="spans"
    )
    task = models.ForeignKey(
        "runs.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="spans"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    start = models.DateTimeField()
    end = models.DateTimeField()
    attributes = models.JSONField(default=dict)
    status = models.CharField(max_length=20, default="UNSET")

    objects = AppendOnlyQuerySet["Span"].as_manager()

    class Meta:
        ordering = ["start"]
        constraints = [models.UniqueConstraint(fields=["trace_id", "span_id"], name="span_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000
