"""A run's Duration is its working time: the clock runs while the run works and stops while it
waits for a person (its report at review, a failure or a spent budget before a retry or an
extension); and its header's reason is the one of its current state, never a stale one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from runs.models import Run
from tests.runs.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """``timezone.now`` stands still until the test moves it on."""
    now = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    return advance


def test_the_duration_leaves_out_every_wait_for_a_person(
    operator: User, clock: Callable[[float], None]
) -> None:
    run = make_run(operator, status=Run.Status.PLANNING, started_at=None)
    assert run.duration_seconds is None  # not started
    assert run.transition(Run.Status.RUNNING)
    clock(12)
    assert run.transition(Run.Status.AGGREGATING) and run.transition(Run.Status.AWAITING_REVIEW)
    clock(300)  # the report waits for a reviewer: not working time
    assert run.duration_seconds == 12

    assert run.transition(Run.Status.RUNNING, "re-running 1 agent: finding dismissed")
    assert run.duration_seconds == 12
    clock(5)
    assert run.duration_seconds == 17  # the clock runs again while it works
    assert run.transition(Run.Status.FAILED, "no agent succeeded")
    clock(1000)  # failed, until an operator retries
    assert run.transition(Run.Status.RUNNING, "retry requested by alice")
    clock(3)
    assert run.transition(Run.Status.AGGREGATING) and run.transition(Run.Status.AWAITING_REVIEW)
    clock(50)
    assert run.transition(Run.Status.APPROVED, "approved by bob")
    clock(60)
    assert run.duration_seconds == 20
    run.refresh_from_db()
    assert run.duration_seconds == 20 and run.idle_seconds == 1300


def test_a_budget_extension_resumes_the_clock_where_it_stopped(
    operator: User, clock: Callable[[float], None]
) -> None:
    run = make_run(operator, status=Run.Status.RUNNING, started_at=timezone.now())
    clock(7)
    assert run.transition(Run.Status.BUDGET_EXHAUSTED, "budget exhausted")
    assert run.duration_seconds == 7  # still aggregating what finished: the clock runs
    clock(2)
    # Its report is built: from here it waits for a person (report.py sets finished_at).
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    run.refresh_from_db()
    clock(600)
    assert run.transition(Run.Status.RUNNING, "budget extended to $2.0000 by carol")
    clock(1)
    assert run.duration_seconds == 10


def test_a_move_without_a_reason_leaves_no_stale_reason(
    operator: User, clock: Callable[[float], None]
) -> None:
    run = make_run(operator, status=Run.Status.RUNNING, status_reason="retry requested by alice")
    assert run.transition(Run.Status.AGGREGATING)
    assert run.status_reason == ""
    run.refresh_from_db()
    assert run.status_reason == ""
    assert run.transition(Run.Status.AWAITING_REVIEW)
    assert run.transition(Run.Status.REJECTED, "rejected by bob")
    run.refresh_from_db()
    assert run.status_reason == "rejected by bob"
