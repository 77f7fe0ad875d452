from __future__ import annotations

from django.db import models
from django.utils import timezone


class Report(models.Model):
    """The aggregated result of a run. Re-aggregating makes a new version; ``clusters`` link back
    to every contributing Finding and Task by id, and each cluster's ``members`` hold the
    provenance of every finding in it (agent, lens, vote, evidence status)."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="reports")
    version = models.PositiveIntegerField(default=1)
    chain = models.JSONField(default=list)
    clusters = models.JSONField(default=list)
    stats = models.JSONField(default=dict)
    source_text = models.TextField(blank=True, help_text="Markdown, untrusted.")
    html = models.TextField(blank=True, help_text="Sanitized HTML rendered from source_text.")
    notes = models.JSONField(default=list, help_text="E.g. budget exhausted, agents skipped.")
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="What produced this version: embedder, dedup threshold, quorums, top K.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["run", "version"], name="report_version_unique")
        ]

    def __str__(self) -> str:
        return f"Report v{self.version} of run {self.run_id}"

    def finding_ranks(self) -> dict[int, int]:
        """Finding id → the rank of the kept item it belongs to (1 = most urgent); findings of
        dropped items, or not in this version, are not ranked."""
        ranks: dict[int, int] = {}
        for cluster in self.clusters or []:
            rank = cluster.get("rank")
            if cluster.get("kept") and rank:
                for finding_id in cluster.get("finding_ids") or []:
                    ranks.setdefault(int(finding_id), int(rank))
        return ranks
