from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from runs.rendering import clean_html


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

    @property
    def body_html(self) -> SafeString:
        """The stored HTML as pages and websocket frames show it: cleaned again with today's
        allow-list, so a version stored before a rule was tightened is no looser than a new one."""
        return mark_safe(clean_html(self.html))  # noqa: S308 - nh3's allow-list output

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
