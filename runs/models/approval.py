from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from runs.models.append_only import AppendOnly, AppendOnlyQuerySet, RecordIsAppendOnly
from runs.models.task import Task


class ApprovalQuerySet(AppendOnlyQuerySet["Approval"]):
    """A gate is decided once, by a conditional UPDATE of pending rows (runs/actions/review.py),
    and a pending gate may be withdrawn (a superseded report version); a decision stands."""

    movable_fields = frozenset({"decision", "decided_by", "decided_at", "comment"})

    def _refuse_decided(self, what: str) -> None:
        if self.exclude(decision="pending").exists():
            raise RecordIsAppendOnly(f"A decided approval is never {what}.")

    def update(self, **kwargs: Any) -> int:
        self._refuse_decided("changed")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._refuse_decided("deleted")
        return models.QuerySet.delete(self)

    def held_agents_by_group(self) -> list[tuple[int, str, int]]:
        """(run id, tree group, how many) of the agent gates among these still pending: what
        a bulk decision can take at once. One grouped query, whatever the number of gates."""
        group = Subquery(Task.objects.filter(pk=OuterRef("target_id")).values("group")[:1])
        rows = (
            self.filter(gate=Approval.Gate.TASK, decision=Approval.Decision.PENDING)
            .annotate(task_group=group)
            .values("run_id", "task_group")
            .annotate(n=Count("id"))
            .order_by("run_id", "task_group")
        )
        return [(r["run_id"], r["task_group"] or "", r["n"]) for r in rows]


class Approval(AppendOnly):
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

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        permissions = [("decide_approval", "Can decide at approval gates")]

    def __str__(self) -> str:
        return f"{self.gate} gate for run {self.run_id}: {self.decision}"
