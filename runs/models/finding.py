from __future__ import annotations

from django.db import models
from django.utils import timezone


class Finding(models.Model):
    """A structured result of one worker. ``fingerprint`` is unique per task so a redelivered
    worker can never store the same finding twice."""

    class Severity(models.TextChoices):
        INFO = "info"
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

    class Review(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        DISMISSED = "dismissed"

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="findings")
    task = models.ForeignKey("runs.Task", on_delete=models.CASCADE, related_name="findings")
    lens = models.CharField(max_length=100, blank=True)
    rule = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MEDIUM)
    confidence = models.FloatField(default=0.5)
    path = models.CharField(max_length=500, blank=True)
    line_start = models.PositiveIntegerField(null=True, blank=True)
    line_end = models.PositiveIntegerField(null=True, blank=True)
    evidence = models.TextField(blank=True)
    cwe = models.PositiveIntegerField(
        null=True, blank=True, help_text="MITRE CWE id where one applies (e.g. 89)."
    )
    fingerprint = models.CharField(max_length=64)
    review = models.CharField(max_length=10, choices=Review.choices, default=Review.OPEN)
    # Tiered models (agents.tiers): "breadth" until a depth agent gives its verdict on it, then
    # "depth". ``verdict`` is "" (never escalated), "escalated" (waiting for, or left without,
    # a depth verdict), or the depth agent's confirmed / corrected / rejected.
    tier = models.CharField(max_length=10, default="breadth")
    verdict = models.CharField(max_length=12, blank=True)
    verdict_reason = models.TextField(blank=True)
    verified_by = models.ForeignKey(
        "runs.Task",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verified_findings",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "fingerprint"], name="finding_unique")
        ]
        indexes = [models.Index(fields=["run", "severity"])]

    def __str__(self) -> str:
        return f"{self.severity}: {self.title}"

    @property
    def location(self) -> str:
        if not self.path:
            return ""
        if self.line_start and self.line_end and self.line_end != self.line_start:
            return f"{self.path}:{self.line_start}-{self.line_end}"
        if self.line_start:
            return f"{self.path}:{self.line_start}"
        return self.path

    @property
    def cwe_label(self) -> str:
        return f"CWE-{self.cwe}" if self.cwe else ""

    @property
    def severity_rank(self) -> int:
        return self.SEVERITY_RANK.get(self.severity, 0)
