"""The run page and the launch form never promise a concurrency the workers cannot give: the
run's real in-flight count against its cap, with the reason when fewer run, and the workers'
own advertised capacity."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from harness_site import workers
from runs.models import Run, Task
from runs.pages.run import dashboard
from tests.runs.factories import make_run, make_task

NOW = timezone.now()


def _tasks(**counts: int) -> list[Task]:
    """Unsaved tasks in the given statuses; queued ones were queued ``queued_age`` ago."""
    age = counts.pop("queued_age", 0)
    tasks = []
    for status, count in counts.items():
        for _ in range(count):
            queued_at = NOW - timedelta(seconds=age) if status == "queued" else None
            tasks.append(Task(status=status, queued_at=queued_at))
    return tasks


def _reason(tasks: list[Task], cap: int = 10, **kwargs: Any) -> dashboard.Concurrency:
    run = Run(status=Run.Status.RUNNING, max_concurrency=cap, provider="heuristic")
    options = {"worker_slots": 256, "workers": 1, "provider_cap": None, **kwargs}
    return dashboard.concurrency(run, tasks, NOW, **options)


def test_at_the_cap_no_reason_is_given() -> None:
    state = _reason(_tasks(running=10, pending=5))
    assert (state.running, state.cap, state.reason) == (10, 10, "")


def test_no_worker_at_all_is_said_first() -> None:
    state = _reason(_tasks(queued=10, queued_age=30), workers=0, worker_slots=0)
    assert state.reason.startswith("No worker is running")


def test_agents_queued_too_long_wait_for_busy_workers() -> None:
    state = _reason(_tasks(running=4, queued=6, queued_age=10), worker_slots=4)
    assert state.reason == (
        "6 queued agents wait for a free worker: the workers run 4 agents at once in all, "
        "shared by every run."
    )


def test_freshly_queued_agents_are_not_blamed_on_the_workers() -> None:
    state = _reason(_tasks(running=4, queued=6, queued_age=0))
    assert "worker" not in state.reason


def test_a_provider_cap_below_the_run_cap_is_named() -> None:
    state = _reason(_tasks(running=2, pending=8), provider_cap=2)
    assert state.reason == "The heuristic provider allows 2 calls at once, across all runs."


def test_retries_and_gates_and_the_tail_are_explained() -> None:
    assert "retry" in _reason(_tasks(running=3, retrying=2)).reason
    assert _reason(_tasks(running=3, awaiting_approval=2)).reason == "2 waiting for approval."
    assert _reason(_tasks(running=3, succeeded=40)).reason == "No more agents are ready to start."


def test_workers_smaller_than_the_cap_are_named() -> None:
    state = _reason(_tasks(running=8, pending=20), worker_slots=8)
    assert state.reason == "The workers run 8 agents at once in all, below this cap."


def test_a_finished_run_gives_no_reason() -> None:
    run = Run(status=Run.Status.AWAITING_REVIEW, max_concurrency=10, provider="heuristic")
    state = dashboard.concurrency(
        run, _tasks(succeeded=3), NOW, worker_slots=4, workers=1, provider_cap=None
    )
    assert state.reason == ""


@pytest.fixture
def no_slot_cache() -> Any:
    workers.forget_cache()
    yield
    workers.forget_cache()


def test_workers_advertise_their_slots_until_they_withdraw(no_slot_cache: None) -> None:
    workers.advertise("alpha@test", 12)
    workers.advertise("beta@test", 4)
    deadline = time.monotonic() + 5
    while workers.worker_slots().total != 16:
        assert time.monotonic() < deadline, workers.worker_slots().workers
        workers.forget_cache()
        time.sleep(0.05)
    assert workers.worker_slots().workers == {"alpha@test": 12, "beta@test": 4}
    workers.withdraw("alpha@test")
    workers.withdraw("beta@test")
    workers.forget_cache()
    assert workers.worker_slots().count == 0


@pytest.mark.django_db
def test_the_run_page_shows_in_flight_against_the_cap(
    viewer_client: Client, no_slot_cache: None
) -> None:
    run = make_run(status=Run.Status.RUNNING, max_concurrency=5)
    for _ in range(3):
        make_task(run, status=Task.Status.RUNNING)
    make_task(run, status=Task.Status.QUEUED, queued_at=timezone.now() - timedelta(minutes=1))
    html = viewer_client.get(run.get_absolute_url()).content.decode()
    stat = html.split('data-stat="in-flight"', 1)[1].split("</div>", 1)[0]
    assert '3<span class="muted"> / 5</span>' in stat
    assert "1 queued" in stat
    # No worker advertises itself in this test: the page says so rather than promise 5.
    assert "No worker is running" in stat


@pytest.mark.django_db
def test_the_launch_form_says_what_the_workers_can_run(
    operator_client: Client, no_slot_cache: None
) -> None:
    workers.advertise("gamma@test", 32)
    try:
        deadline = time.monotonic() + 5
        while workers.worker_slots().total < 32:
            assert time.monotonic() < deadline
            workers.forget_cache()
            time.sleep(0.05)
        html = operator_client.get(reverse("runs:launch")).content.decode()
    finally:
        workers.withdraw("gamma@test")
    assert "The workers run 32 agents at once in all (1 worker), shared by every run." in html
