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

    Its life is the table ``LIFECYCLE`` below: every status change after creation is one of the
    named ``Task.Move``s, made by ``move``/``move_many`` as a conditional UPDATE from the move's
    allowed statuses (a Celery redelivery can never double-claim; a forbidden move raises
    ``ForbiddenMove`` before touching a row)::

        queue          pending → queued                      dispatch, or a freed slot's hand-over
        hold           pending → awaiting_approval           the run holds its role for approval
        release        awaiting_approval → pending           approved at its gate
        reject         awaiting_approval → skipped           rejected at its gate
        claim          queued | retrying | running → running a worker takes it (running: only
                                                             when its holder's process is gone,
                                                             released, or past its lease)
        wait_for_slot  running → queued                      every provider slot busy
        retry          running → retrying                    transient error, backoff countdown
        succeed        running → succeeded
        fail           running | queued | retrying → failed
        skip           pending | queued | retrying | running | awaiting_approval → skipped
                                                             budget out, dependency failed,
                                                             run stopped
        cancel         pending | queued | running | retrying | awaiting_approval → cancelled
        new_try        failed | succeeded → pending          an operator's retry, a re-run behind a
                                                             dismissed finding (one source a call)
        resume         skipped → pending                     the budget was extended

    The run's counters (``tasks_done``, ``tasks_failed``, ``tasks_skipped``) follow every move.
    An agent's tries are told apart by its stored calls' indexes (``TRY_SPAN``).
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

    class Move(models.TextChoices):
        """The named moves of an agent's life (``LIFECYCLE`` holds each one's from and to)."""

        QUEUE = "queue"
        HOLD = "hold"
        RELEASE = "release"
        REJECT = "reject"
        CLAIM = "claim"
        WAIT_FOR_SLOT = "wait_for_slot"
        RETRY = "retry"
        SUCCEED = "succeed"
        FAIL = "fail"
        SKIP = "skip"
        CANCEL = "cancel"
        NEW_TRY = "new_try"
        RESUME = "resume"

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
    holder = models.CharField(
        max_length=200,
        blank=True,
        help_text="The worker process running it (harness_site.liveness); '' when none.",
    )
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When a retrying agent's delayed message is due."
    )
    model_seconds = models.FloatField(default=0.0)
    tool_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    summary = models.TextField(blank=True)
    output = models.JSONField(default=dict, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    # Its allowance (agents.budget_scopes): the weight of its share of its parent's, the budget
    # its spawner asked for (None: the run's split rule decides), and what it was given at its
    # first model call (None: not yet, or no limit of its own).
    allowance_weight = models.PositiveBigIntegerField(default=0)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    allowance_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    allowance_tokens = models.PositiveBigIntegerField(null=True, blank=True)

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
        move: Task.Move,
        *,
        only_from: Sequence[str] | None = None,
        run_deltas: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> bool:
        """Make ``move`` if the task is still in one of its allowed statuses; True only for the
        one caller that won. ``run_deltas`` (F expressions for the run's own totals) go into the
        same UPDATE of the run as its counters, and only if this caller won."""
        moved = Task.move_many([self], move, only_from=only_from, run_deltas=run_deltas, **changes)
        return bool(moved)

    @staticmethod
    def move_many(
        tasks: Sequence[Task],
        move: Task.Move,
        *,
        only_from: Sequence[str] | None = None,
        run_deltas: Mapping[str, Any] | None = None,
        defer_counters: dict[int, dict[str, int]] | None = None,
        **changes: Any,
    ) -> list[Task]:
        """Make ``move`` on each task still in one of its allowed statuses (one conditional
        UPDATE each, so racing callers each win different tasks) and keep the run's counters in
        step with one UPDATE per run. Returns the tasks this caller moved.

        ``defer_counters`` (run id → counter → change) collects the counters' changes for the
        caller's own UPDATE of the run instead of making one here (``run_deltas`` then unused).

        ``only_from`` narrows the move's allowed statuses for this call (never widens them:
        ``ForbiddenMove``). Leaving a finished status needs exactly one source, so the counter a
        moved task leaves is known without reading it back.
        """
        sources, new_status = allowed_sources(move, only_from)
        finished_from = [s for s in sources if s in COUNTER_OF]
        moved = []
        for task in tasks:
            won = (
                Task.objects.filter(pk=task.pk, status__in=sources).update(
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
            counters = _counter_changes(new_status, finished_from, count)
            if defer_counters is not None:
                # The caller adds them to the run's own UPDATE (a batch of outcomes: one).
                bucket = defer_counters.setdefault(run_id, {})
                for name, value in counters.items():
                    bucket[name] = bucket.get(name, 0) + value
                continue
            deltas: dict[str, Any] = dict(run_deltas or {})
            for name, value in counters.items():
                deltas[name] = deltas.get(name, F(name)) + value
            if deltas:
                Run.objects.filter(pk=run_id).update(**deltas)
        return moved


def _counter_changes(new_status: str, finished_from: Sequence[str], count: int) -> dict[str, int]:
    """How the run's done/failed/skipped counters change when ``count`` tasks move."""
    changes: dict[str, int] = {}
    if new_status in COUNTER_OF:
        changes[COUNTER_OF[new_status]] = count
    if finished_from:
        left = COUNTER_OF[finished_from[0]]
        changes[left] = changes.get(left, 0) - count
    return {name: value for name, value in changes.items() if value}


class ForbiddenMove(ValueError):
    """A status change the agent's lifecycle does not allow: a bug in the caller."""


_S = Task.Status
# The life of an agent: each move's allowed statuses and where it goes. The only table of it.
LIFECYCLE: dict[str, tuple[frozenset[str], str]] = {
    Task.Move.QUEUE: (frozenset({_S.PENDING}), _S.QUEUED),
    Task.Move.HOLD: (frozenset({_S.PENDING}), _S.AWAITING_APPROVAL),
    Task.Move.RELEASE: (frozenset({_S.AWAITING_APPROVAL}), _S.PENDING),
    Task.Move.REJECT: (frozenset({_S.AWAITING_APPROVAL}), _S.SKIPPED),
    Task.Move.CLAIM: (frozenset({_S.QUEUED, _S.RETRYING, _S.RUNNING}), _S.RUNNING),
    Task.Move.WAIT_FOR_SLOT: (frozenset({_S.RUNNING}), _S.QUEUED),
    Task.Move.RETRY: (frozenset({_S.RUNNING}), _S.RETRYING),
    Task.Move.SUCCEED: (frozenset({_S.RUNNING}), _S.SUCCEEDED),
    Task.Move.FAIL: (frozenset({_S.RUNNING, _S.QUEUED, _S.RETRYING}), _S.FAILED),
    Task.Move.SKIP: (
        frozenset({_S.PENDING, _S.QUEUED, _S.RETRYING, _S.RUNNING, _S.AWAITING_APPROVAL}),
        _S.SKIPPED,
    ),
    Task.Move.CANCEL: (
        frozenset({_S.PENDING, _S.QUEUED, _S.RUNNING, _S.RETRYING, _S.AWAITING_APPROVAL}),
        _S.CANCELLED,
    ),
    Task.Move.NEW_TRY: (frozenset({_S.FAILED, _S.SUCCEEDED}), _S.PENDING),
    Task.Move.RESUME: (frozenset({_S.SKIPPED}), _S.PENDING),
}


def allowed_sources(move: str, only_from: Sequence[str] | None = None) -> tuple[list[str], str]:
    """The statuses ``move`` may start from (narrowed by ``only_from``) and where it goes.
    Raises ``ForbiddenMove`` for an unknown move, a source the move does not allow, or a move
    out of more than one finished status."""
    if move not in LIFECYCLE:
        raise ForbiddenMove(f"no such move: {move!r}")
    sources, target = LIFECYCLE[move]
    if only_from is None:
        chosen = sorted(sources)
    else:
        chosen = sorted(set(only_from))
        outside = [s for s in chosen if s not in sources]
        if outside or not chosen:
            raise ForbiddenMove(
                f"{move}: an agent cannot move from {', '.join(outside) or 'nothing'} to {target}"
            )
    if len([s for s in chosen if s in COUNTER_OF]) > 0 and len(chosen) != 1:
        raise ForbiddenMove(f"{move}: name the one finished status it leaves ({chosen})")
    return chosen, target


# The run's counter each finished status counts in (cancelled agents count as skipped).
COUNTER_OF: dict[str, str] = {
    Task.Status.SUCCEEDED: "tasks_done",
    Task.Status.FAILED: "tasks_failed",
    Task.Status.SKIPPED: "tasks_skipped",
    Task.Status.CANCELLED: "tasks_skipped",
}


# An agent's earlier tries (an operator's retry, a re-run behind a dismissed finding) keep their
# stored calls at index + TRY_SPAN * n, out of the way of the new try's indexes: an agent never
# makes a million calls.
TRY_SPAN = 1_000_000


def try_generation(top_index: int | None) -> int:
    """Which try of an agent is current, from the highest index among its stored steps."""
    return 0 if top_index is None else top_index // TRY_SPAN


def next_try_shift(top_index: int) -> int:
    """How far a new try moves the current try's calls: past every earlier try's."""
    return TRY_SPAN * (1 + top_index // TRY_SPAN)


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
