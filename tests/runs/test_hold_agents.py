"""Held agents go to their approval gate without using up the run's free slots."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.actions import enqueue
from runs.actions.dispatch import dispatch
from runs.models import Approval, Task
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db


def test_one_dispatch_holds_every_held_agent_and_still_fills_the_free_slots(
    operator: User, monkeypatch: Any
) -> None:
    monkeypatch.setattr(enqueue, "send", lambda name, object_id, countdown=None: None)
    run = make_run(operator, max_concurrency=2)
    fresh: dict[str, Any] = {"status": Task.Status.PENDING, "started_at": None, "finished_at": None}
    held = [make_task(run, needs_approval=True, **fresh) for _ in range(5)]
    free = [make_task(run, **fresh) for _ in range(3)]
    dispatch(run.pk)
    status = dict(Task.objects.filter(run=run).values_list("pk", "status"))
    assert [status[t.pk] for t in held] == [Task.Status.AWAITING_APPROVAL] * 5
    assert [status[t.pk] for t in free] == [Task.Status.QUEUED] * 2 + [Task.Status.PENDING]
    assert Approval.objects.filter(run=run, gate="task", decision="pending").count() == 5
