"""A run's totals (tokens, cost, unpriced calls) equal what its ended tries' stored calls cost.

Each try of an agent adds its stored calls to the run when it ends (``runs.actions.paid``), so
the run's totals are exactly the calls of every ended agent plus the earlier tries (moved past
``TRY_SPAN``) of agents still working. ``reconcile`` recomputes that from the steps under the
run's lock (every ending takes it first) and, when the stored totals drifted, repairs them and
records ``budget.reconciled`` with the drift: a drift is a bug somewhere, made visible, never
left standing. The sweeper reconciles every working run each period, and aggregation before it
writes the report.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from runs.actions.outcomes import lock_run
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Run, Step, Task
from runs.models.task import TRY_SPAN

logger = logging.getLogger(__name__)


def paid_totals(run_id: int) -> dict[str, int | Decimal]:
    """What the run's ended tries cost, from its stored calls."""
    ended = Q(task__status__in=Task.Status.terminal()) | Q(index__gte=TRY_SPAN)
    row = (
        Step.objects.filter(task__run_id=run_id)
        .filter(ended)
        .aggregate(
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost_usd=Sum("cost_usd"),
            unpriced_calls=Count("id", filter=Q(unpriced=True)),
            calls=Count("id"),
        )
    )
    return {
        "calls": row["calls"] or 0,
        "tokens_in": row["tokens_in"] or 0,
        "tokens_out": row["tokens_out"] or 0,
        "cost_usd": Decimal(row["cost_usd"] or 0).quantize(Decimal("0.000001")),
        "unpriced_calls": row["unpriced_calls"] or 0,
    }


def reconcile(run_id: int) -> Decimal | None:
    """Repair the run's totals if they drifted from its paid calls; the cost drift (None: none)."""
    with transaction.atomic():
        run = lock_run(run_id)
        fields = ("tokens_in", "tokens_out", "cost_usd", "unpriced_calls")
        stored: dict[str, Any] = dict(Run.objects.filter(pk=run_id).values(*fields)[0])
        paid = paid_totals(run_id)
        calls = int(paid.pop("calls"))
        # SQLite keeps a call's cost unrounded while each addition to the run rounds to six
        # places: up to a micro-dollar a call is rounding there, not drift (PostgreSQL: exact).
        slack = Decimal("0.000001") * calls if connection.vendor == "sqlite" else Decimal(0)
        same_cost = abs(Decimal(paid["cost_usd"]) - stored["cost_usd"]) <= slack
        if same_cost and all(stored[n] == v for n, v in paid.items() if n != "cost_usd"):
            return None
        Run.objects.filter(pk=run_id).update(**paid)
        drift: Decimal = Decimal(paid["cost_usd"]) - Decimal(stored["cost_usd"])
        tokens_drift = int(paid["tokens_in"]) + int(paid["tokens_out"])
        tokens_drift -= stored["tokens_in"] + stored["tokens_out"]
        record_event(
            run,
            EventType.BUDGET_RECONCILED,
            {
                "was_usd": str(stored["cost_usd"]),
                "cost_usd": str(paid["cost_usd"]),
                "drift_usd": str(drift),
                "tokens_drift": tokens_drift,
            },
        )
    logger.warning(
        "run %s: totals reconciled with its paid calls (cost drift %s USD, %d tokens)",
        run_id,
        drift,
        tokens_drift,
    )
    return drift
