from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Approval(models.Model):
    """A human decision at a gate. Created pending; decided once (conditional update)."""

    class Gate(models.TextChoices):
        REPORT = "report"
        FINDING = "finding"
        TASK = "task"
        BUDGET = "budget"

    class Decision(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="approvals")
    gate = models.CharField(max_length=10, choices=Gate.choices)
    target_id = models.PositiveBigIntegerField()
    target_label = models.CharField(max_length=300, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decision = models.CharField(max_length=10, choices=Decision.choices, default="pending")
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        permissions = [("decide_approval", "Can decide at approval gates")]

    def __str__(self) -> str:
        return f"{self.gate} gate for run {self.run_id}: {self.decision}"
