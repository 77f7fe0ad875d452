from __future__ import annotations

from django.db import models
from django.utils import timezone

from runs.models.append_only import AppendOnly, AppendOnlyQuerySet


class Event(AppendOnly):
    """Append-only log of a run. ``seq`` is gap-free and strictly increasing per run; each event
    is written in the transaction of the change it records (see runs/eventlog/events.py)."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=50)
    task = models.ForeignKey(
        "runs.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AppendOnlyQuerySet["Event"].as_manager()

    class Meta:
        ordering = ["run_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="event_seq_unique")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"
