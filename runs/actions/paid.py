"""What an agent's stored calls cost, read back from its steps: the one source of an agent's and
a run's tokens and cost (the budget in Redis and the run's totals must agree with it). A failed,
cancelled or skipped agent paid for the calls it made too."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum

from runs.models import Step, Task
from runs.models.task import TRY_SPAN

NOTHING_PAID: tuple[dict[str, Any], dict[str, Any]] = (
    {
        "tokens_in": 0,
        "tokens_out": 0,
        "cost_usd": Decimal(0),
        "unpriced": False,
        "model_seconds": 0.0,
        "tool_seconds": 0.0,
    },
    {},
)


def paid_many(tasks: list[Task]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Per agent that made calls, what its stored calls cost: its own fields over every try,
    and what this try adds to the run's totals (the earlier tries' were added when they ended).
    One query for the whole batch."""
    this_try = Q(index__lt=TRY_SPAN)
    rows = (
        Step.objects.filter(task_id__in=[t.pk for t in tasks])
        .values("task_id")
        .annotate(
            tin=Sum("tokens_in"),
            tout=Sum("tokens_out"),
            cost=Sum("cost_usd"),
            n_unpriced=Count("id", filter=Q(unpriced=True)),
            run_tin=Sum("tokens_in", filter=this_try),
            run_tout=Sum("tokens_out", filter=this_try),
            run_cost=Sum("cost_usd", filter=this_try),
            run_n_unpriced=Count("id", filter=this_try & Q(unpriced=True)),
            model_s=Sum("seconds", filter=Q(kind="chat")),
            tool_s=Sum("seconds", filter=Q(kind="tool")),
        )
    )
    paid: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for row in rows:
        fields = {
            "tokens_in": row["tin"] or 0,
            "tokens_out": row["tout"] or 0,
            "cost_usd": row["cost"] or Decimal(0),
            "unpriced": bool(row["n_unpriced"]),
            "model_seconds": row["model_s"] or 0.0,
            "tool_seconds": row["tool_s"] or 0.0,
        }
        run_totals = {
            "tokens_in": row["run_tin"] or 0,
            "tokens_out": row["run_tout"] or 0,
            "cost_usd": row["run_cost"] or Decimal(0),
            "unpriced_calls": row["run_n_unpriced"] or 0,
        }
        paid[row["task_id"]] = (fields, run_totals)
    return paid


def paid(task: Task) -> tuple[dict[str, Any], dict[str, Any]]:
    """One agent's ``paid_many``, with the run's part as update expressions (``F(name) + n``),
    for an outcome that updates the run's row itself; a zero is left out."""
    fields, run_totals = paid_many([task]).get(task.pk, NOTHING_PAID)
    return fields, {name: F(name) + value for name, value in run_totals.items() if value}
