"""The budget's Redis state belongs to exactly one run, whatever else Redis has seen."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management.color import no_style
from django.db import connection
from django.db.models import Sum

from runs.actions import launch_run
from runs.models import Run, Step, Task
from runs.run_budget import budget_for
from tests.engine.helpers import make_target, wait_for_run, wait_for_spans

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _fresh_database() -> None:
    """What `migrate` on an empty database gives: no rows, and ids that start at 1 again."""
    Run.objects.all().delete()
    sequences = connection.introspection.sequence_list()
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_by_name_sql(no_style(), sequences):
            cursor.execute(sql)


def test_new_database_with_old_redis_never_overspends(
    celery_worker: Any, tmp_path: Path, settings: Any
) -> None:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = make_target(tmp_path.resolve(), 6)  # 6 files x 3 lenses = 18 agents
    celery_worker(concurrency=4, name="oldredis")

    def audit(budget: str) -> Run:
        run = launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            max_concurrency=4,
            options={"chunk_files": 1},
            budget_usd=budget,
        )
        return wait_for_run(run.pk)

    _fresh_database()  # ids from 1, whatever tests ran before in this database
    first = audit("100")
    assert first.status == Run.Status.AWAITING_REVIEW
    per_agent = first.cost_usd / first.tasks_total
    first_ids = (first.pk, sorted(Task.objects.filter(run=first).values_list("pk", flat=True)))
    # Redis keeps the first run's spending (and every reservation id it settled).
    assert budget_for(first).state().spent_usd == pytest.approx(float(first.cost_usd))

    # The worker writes spans in batches, after the run's status: let the last ones land
    # before the database is wiped (as an operator would restore a backup of a quiet system).
    wait_for_spans(first)
    _fresh_database()
    budget = (per_agent * 10).quantize(Decimal("0.000001"))
    second = audit(str(budget))

    # The collision really was set up: same run id and the same task ids as the old run's.
    assert second.pk == first_ids[0]
    second_tasks = sorted(Task.objects.filter(run=second).values_list("pk", flat=True))
    assert second_tasks[: len(first_ids[1])] == first_ids[1][: len(second_tasks)]
    assert second.uid != first.uid

    assert second.status == Run.Status.BUDGET_EXHAUSTED
    steps_cost = Step.objects.filter(task__run=second).aggregate(c=Sum("cost_usd"))["c"]
    assert second.cost_usd == steps_cost
    assert 0 < second.cost_usd <= budget
    state = budget_for(second).state()
    assert state.spent_usd == pytest.approx(float(steps_cost), abs=1e-6)
    assert state.limit_usd == float(budget)
    # The old run's state is untouched: nothing of it was lent to the new run.
    assert budget_for(first).state().spent_usd == pytest.approx(float(first.cost_usd))
