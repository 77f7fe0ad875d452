"""A new try of agents that already ran (an operator's "Retry failed", a re-run behind a
dismissed finding): back to pending with fresh attempts, their stored calls kept but moved out
of the new try's way.

The earlier tries' steps move to index + TRY_SPAN * n, so the new try neither replays them (a
permanent failure would only fail again) nor collides with them, and its budget reservations
carry the try (``runs.run_budget.step_reservation_id``). What they cost stays in the run's totals
(added when that try ended) and in the agent's own (recomputed over every try at its end).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import F, Max

from agents.aggregation.stages import OUTPUT_CAP_RULE
from runs.models import Finding, Run, Step, Task
from runs.models.task import TRY_SPAN, next_try_shift


def new_try(run: Run, tasks: Sequence[Task], allowed_from: str) -> list[Task]:
    """Move ``tasks`` (all in ``allowed_from``) back to pending for a new try. Returns the
    tasks moved (the caller holds the run's lock). An agent whose role the run holds for
    approval waits at its gate again: the earlier approval was for the earlier try."""
    # One query for every agent's highest index, one UPDATE per distinct shift (usually one):
    # a retry of hundreds of failed agents is not hundreds of round trips.
    tops = (
        Step.objects.filter(task__in=tasks)
        .values("task_id")
        .annotate(top=Max("index"))
        .values_list("task_id", "top")
    )
    by_shift: dict[int, list[int]] = {}
    for task_id, top in tops:
        by_shift.setdefault(next_try_shift(top), []).append(task_id)
    for shift, task_ids in by_shift.items():
        Step.objects.filter(task_id__in=task_ids, index__lt=TRY_SPAN).update(
            index=F("index") + shift
        )
    # Their findings stay stored; the new try's outcome counts what it reports again.
    # (less the output-limit notes, which the count never had: completion.py)
    findings = Finding.objects.filter(task__in=tasks).exclude(rule=OUTPUT_CAP_RULE).count()
    moved = Task.move_many(
        tasks,
        Task.Move.NEW_TRY,
        only_from=[allowed_from],
        run_deltas={"findings_count": F("findings_count") - findings} if findings else None,
        attempts=0,
        error="",
        # A new try: its duration and queue wait are its own (the agent page lists every
        # attempt, of every try, from the events).
        started_at=None,
        queued_at=None,
        finished_at=None,
    )
    held_roles = {role for role in {t.role for t in moved} if run.holds(role)}
    held = [t.pk for t in moved if t.role in held_roles]
    if held:
        Task.objects.filter(pk__in=held).update(needs_approval=True)
        for task in moved:
            task.needs_approval = task.needs_approval or task.pk in held
    return moved
