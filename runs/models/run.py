from __future__ import annotations

import uuid
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.urls import reverse
from django.utils import timezone

from agents.playbooks import Playbook


class RunQuerySet(models.QuerySet["Run"]):
    def visible_to(self, user: User | AnonymousUser) -> RunQuerySet:
        """Runs a user may see. Every signed-in member of a role sees every run (a shared
        dashboard); users with no role see only the runs they launched."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser or user.has_perm("runs.view_run"):
            return self
        return self.filter(launched_by=user)

    def active(self) -> RunQuerySet:
        """Runs still working: the same rule as ``Run.is_active``."""
        return self.filter(finished_at__isnull=True)


class Run(models.Model):
    """One launch of a playbook over a frozen target.

    State machine (every transition is a conditional UPDATE … WHERE status IN (…)):

        pending → planning → running → aggregating → awaiting_review → approved | rejected
        planning | running → budget_exhausted              (what finished is still aggregated:
                                                            the report is built and reviewed
                                                            without leaving this status)
        budget_exhausted → approved | rejected             (the reviewer's decision)
        pending | planning | running → cancelled           (operator)
        pending | planning | running | aggregating → failed (fail-fast, critical agent, planning)
        awaiting_review | failed → running                 (operator retries failed agents)
        budget_exhausted → running                         (a budget extension was approved)

    ``finished_at`` is set when nothing more will happen without a person: the report awaits
    review, or the run was cancelled or failed. ``is_active`` means "still working".

    ``status_reason`` is why the run is in its current status: a move without a reason clears
    it, so a resumed run's "re-running 1 agent" does not outlive the re-run.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        PLANNING = "planning"
        RUNNING = "running"
        AGGREGATING = "aggregating"
        AWAITING_REVIEW = "awaiting_review"
        APPROVED = "approved"
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        FAILED = "failed"
        BUDGET_EXHAUSTED = "budget_exhausted"

    TRANSITIONS: dict[str, tuple[str, ...]] = {
        Status.PLANNING: (Status.PENDING,),
        Status.RUNNING: (
            Status.PLANNING,
            Status.AWAITING_REVIEW,
            Status.FAILED,
            Status.BUDGET_EXHAUSTED,
        ),
        Status.BUDGET_EXHAUSTED: (Status.PLANNING, Status.RUNNING),
        Status.AGGREGATING: (Status.RUNNING,),
        Status.AWAITING_REVIEW: (Status.AGGREGATING,),
        Status.APPROVED: (Status.AWAITING_REVIEW, Status.BUDGET_EXHAUSTED),
        Status.REJECTED: (Status.AWAITING_REVIEW, Status.BUDGET_EXHAUSTED),
        Status.CANCELLED: (Status.PENDING, Status.PLANNING, Status.RUNNING),
        Status.FAILED: (Status.PENDING, Status.PLANNING, Status.RUNNING, Status.AGGREGATING),
    }

    # Unique across deployments and database resets: names the run's state outside the database
    # (the budget in Redis), where an integer id reused by a fresh database would collide.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200, blank=True)
    playbook = models.CharField(max_length=100)
    config = models.JSONField(default=dict, help_text="The playbook as resolved at launch.")
    target_kind = models.CharField(max_length=20, default="directory")
    target_label = models.CharField(max_length=500)
    # The content digest (the same kept files, the same digest: task keys build on it) and the
    # key of this target's own manifest (its skipped files too): runs before the key existed
    # have none and open their manifest by its digest (``snapshot_ref``).
    snapshot_digest = models.CharField(max_length=64)
    snapshot_key = models.CharField(max_length=64, blank=True, default="")
    snapshot_info = models.JSONField(default=dict, help_text="File count, bytes, skips.")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    provider = models.CharField(max_length=50, default="heuristic")
    model = models.CharField(max_length=200, blank=True)
    max_concurrency = models.PositiveIntegerField(default=4)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    budget_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    max_depth = models.PositiveIntegerField(default=3)
    max_agents = models.PositiveIntegerField(default=500)
    max_children = models.PositiveIntegerField(default=8)
    latency_ms = models.PositiveIntegerField(default=0)
    aggregation = models.JSONField(default=list)
    allowances = models.JSONField(
        default=dict,
        blank=True,
        help_text="Each planner group's slice of the budget: {group: {usd, tokens, weight}}.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=500, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    root_span_id = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    idle_seconds = models.FloatField(
        default=0.0,
        help_text="Time spent ended, waiting for a person, before a resume: not in the duration.",
    )
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    unpriced_calls = models.PositiveIntegerField(default=0)
    # Denormalised counters so the runs list needs no per-row aggregate query.
    tasks_total = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    tasks_failed = models.PositiveIntegerField(default=0)
    tasks_skipped = models.PositiveIntegerField(default=0)
    findings_count = models.PositiveIntegerField(default=0)
    # Last event seq handed out; incremented under the row lock so seqs are gap-free.
    last_seq = models.PositiveBigIntegerField(default=0)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]
        permissions = [
            ("launch_run", "Can launch runs"),
            ("cancel_run", "Can cancel runs and retry failed agents"),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} {self.playbook} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("runs:detail", args=[self.pk])

    @property
    def snapshot_ref(self) -> str:
        """What opens this run's snapshot (``agents.snapshot.open_snapshot``)."""
        return self.snapshot_key or self.snapshot_digest

    @property
    def is_active(self) -> bool:
        """Still working: nothing more happens without a person once ``finished_at`` is set."""
        return self.finished_at is None

    @property
    def can_cancel(self) -> bool:
        return self.status in self.TRANSITIONS[Run.Status.CANCELLED]

    @property
    def can_retry(self) -> bool:
        """Failed agents can be retried while the run runs, or from a state that may resume."""
        resumable = self.status == Run.Status.RUNNING or (
            self.status in self.TRANSITIONS[Run.Status.RUNNING]
        )
        return self.tasks_failed > 0 and resumable

    @cached_property
    def resolved_playbook(self) -> Playbook:
        """The playbook as resolved at launch (the frozen ``config``, never today's defaults)."""
        return Playbook.from_config(self.config)

    def holds(self, role: str) -> bool:
        """Whether an agent of ``role`` must wait at an approval gate before it starts: asked
        for every agent when it is created or given a new try, never copied from a parent (whose
        own approval has cleared its flag), so no path starts a held agent unapproved."""
        roles = (self.config or {}).get("roles") or {}
        spec = roles.get(role)
        return bool(spec and spec.get("needs_approval"))

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def channel_group(self) -> str:
        return f"run-{self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        """The run's working time: from its start to its end (now, while it works), less the
        time it spent ended waiting for a person (its report at review, a failure or a spent
        budget) before someone resumed it (a re-run, a retry, a budget extension). A run
        approved an hour after its 12 s of work took 12 s; re-running one agent for 3 s
        makes it 15 s, not the hour in between."""
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds() - self.idle_seconds)

    def transition(self, new_status: str, reason: str = "") -> bool:
        """Move to ``new_status`` only from an allowed state; returns False if another process
        won the race or the move is not allowed. Refreshes ``self`` on success."""
        allowed = self.TRANSITIONS.get(new_status, ())
        # The reason of the new status, or none: the old one would describe a state left.
        changes: dict[str, Any] = {"status": new_status, "status_reason": reason[:500]}
        now = timezone.now()
        if new_status == Run.Status.RUNNING:
            changes["started_at"] = self.started_at or now
            changes["finished_at"] = None
            if self.finished_at is not None:
                # A resume: the time it stood ended is left out of its duration. The callers
                # hold the run's lock, so ``finished_at`` is the row's.
                waited = max(0.0, (now - self.finished_at).total_seconds())
                changes["idle_seconds"] = self.idle_seconds + waited
        if new_status in (
            Run.Status.AWAITING_REVIEW,
            Run.Status.CANCELLED,
            Run.Status.FAILED,
        ):
            changes["finished_at"] = now
        won = Run.objects.filter(pk=self.pk, status__in=allowed).update(**changes) == 1
        if won:
            for name, value in changes.items():
                setattr(self, name, value)
        return won

    @property
    def progress_percent(self) -> int:
        if not self.tasks_total:
            return 0
        finished = self.tasks_done + self.tasks_failed + self.tasks_skipped
        return min(100, round(100 * finished / self.tasks_total))
