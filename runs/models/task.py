from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import F
from django.utils import timezone

from runs.models.append_only import AppendOnly, AppendOnlyQuerySet
from runs.models.run import Run


class Task(models.Model):
    """One agent node of a run's tree.

    State machine (conditional UPDATEs; a Celery redelivery can never double-claim):

        pending → queued → running → succeeded | failed
        running → retrying → queued              (transient error, backoff countdown)
        pending → awaiting_approval → pending    (needs approval gate)
        pending | queued | retrying → skipped    (budget exhausted, dependency failed)
        pending | queued | running | retrying → cancelled
        failed → pending                         (operator retries failed agents)

    The run's counters (``tasks_done``, ``tasks_failed``, ``tasks_skipped``) follow every move
    made through ``move``/``move_many``, the only way statuses change after creation.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        RETRYING = "retrying"
        AWAITING_APPROVAL = "awaiting_approval"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"

        @classmethod
        def terminal(cls) -> list[str]:
            return [cls.SUCCEEDED, cls.FAILED, cls.SKIPPED, cls.CANCELLED]

        @classmethod
        def in_flight(cls) -> list[str]:
            return [cls.QUEUED, cls.RUNNING, cls.RETRYING]

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="tasks")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    depth = models.PositiveIntegerField(default=0)
    key = models.CharField(max_length=64, help_text="SHA-256 of step, lens, scope, snapshot.")
    step = models.CharField(max_length=100)
    role = models.CharField(max_length=100, default="worker")
    lens = models.CharField(max_length=100, blank=True)
    scope = models.JSONField(default=dict)
    scope_label = models.CharField(max_length=300, blank=True)
    group = models.CharField(
        max_length=300,
        blank=True,
        help_text="Where the planner put it in the run's structure ('/'-separated, e.g. a folder).",
    )
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, related_name="dependents", blank=True
    )
    why = models.CharField(max_length=500, blank=True)
    provider = models.CharField(max_length=50, default="heuristic")
    model = models.CharField(max_length=200, blank=True)
    critical = models.BooleanField(default=False)
    needs_approval = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=4)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    unpriced = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Refreshed at every step while running."
    )
    model_seconds = models.FloatField(default=0.0)
    tool_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    summary = models.TextField(blank=True)
    output = models.JSONField(default=dict, blank=True)
    span_id = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="task_key_unique")]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"Task #{self.pk} {self.step}/{self.lens} {self.scope_label} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in Task.Status.terminal()

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at or not self.finished_at:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def queue_seconds(self) -> float | None:
        if not self.queued_at or not self.started_at:
            return None
        return max(0.0, (self.started_at - self.queued_at).total_seconds())

    @property
    def total_tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def move(
        self,
        new_status: str,
        *,
        allowed_from: Sequence[str],
        run_deltas: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> bool:
        """Conditional transition; True only for the one caller that won. ``run_deltas`` (F
        expressions for the run's own totals) go into the same UPDATE of the run as its
        counters, and only if this caller won."""
        moved = Task.move_many(
            [self], new_status, allowed_from=allowed_from, run_deltas=run_deltas, **changes
        )
        return bool(moved)

    @staticmethod
    def move_many(
        tasks: Sequence[Task],
        new_status: str,
        *,
        allowed_from: Sequence[str],
        run_deltas: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> list[Task]:
        """Move each task that is still in ``allowed_from`` (one conditional UPDATE each, so
        racing callers each win different tasks) and keep the run's counters in step with one
        UPDATE per run. Returns the tasks this caller moved.

        ``allowed_from`` is either only unfinished statuses or exactly one finished status, so
        the counter a moved task leaves is known without reading it back.
        """
        finished_from = [s for s in allowed_from if s in COUNTER_OF]
        if finished_from and len(allowed_from) != 1:
            raise ValueError(f"ambiguous counters moving from {allowed_from} to {new_status}")
        moved = []
        for task in tasks:
            won = (
                Task.objects.filter(pk=task.pk, status__in=allowed_from).update(
                    status=new_status, **changes
                )
                == 1
            )
            if won:
                task.status = new_status
                for name, value in changes.items():
                    setattr(task, name, value)
                moved.append(task)
        by_run: dict[int, int] = {}
        for task in moved:
            by_run[task.run_id] = by_run.get(task.run_id, 0) + 1
        for run_id, count in by_run.items():
            deltas: dict[str, Any] = dict(run_deltas or {})
            if new_status in COUNTER_OF:
                deltas[COUNTER_OF[new_status]] = F(COUNTER_OF[new_status]) + count
            if finished_from:
                left = COUNTER_OF[finished_from[0]]
                deltas[left] = deltas.get(left, F(left)) - count
            if deltas:
                Run.objects.filter(pk=run_id).update(**deltas)
        return moved


# The run's counter each finished status counts in (cancelled agents count as skipped).
COUNTER_OF: dict[str, str] = {
    Task.Status.SUCCEEDED: "tasks_done",
    Task.Status.FAILED: "tasks_failed",
    Task.Status.SKIPPED: "tasks_skipped",
    Task.Status.CANCELLED: "tasks_skipped",
}


class StepQuerySet(AppendOnlyQuerySet["Step"]):
    # A new try moves the earlier try's calls out of its way (runs/actions/tries.py); what a
    # call was, cost and returned never changes.
    movable_fields = frozenset({"index"})


class Step(AppendOnly):
    """One persisted model or tool call of an agent, so a redelivered agent resumes after the
    last stored step instead of paying for it again. Written once (``AppendOnly``)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=20)  # "chat" | "tool"
    name = models.CharField(max_length=200)
    data = models.JSONField(default=dict)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    price_version = models.CharField(max_length=50, blank=True)
    unpriced = models.BooleanField(default=False)
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(default=timezone.now)

    objects = StepQuerySet.as_manager()

    class Meta:
        ordering = ["task_id", "index"]
        constraints = [models.UniqueConstraint(fields=["task", "index"], name="step_index_unique")]

    def __str__(self) -> str:
        return f"Step {self.index} of task {self.task_id}: {self.kind} {self.name}"
