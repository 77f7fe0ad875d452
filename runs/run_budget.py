"""A run's budget in Redis: named by the run's UUID, rebuilt from the database when missing.

The reservation protocol itself (reserve before a call, settle after) is ``agents.budget``; the
runtime (``runs/engine/runtime.py``) reserves and settles around every model call of an agent.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Max, Sum

from agents.budget import Budget
from harness_site.redis_client import get_redis
from runs.allowances import rebuild_scopes
from runs.models import Run, Step
from runs.models.task import TRY_SPAN, try_generation


def budget_for(run: Run) -> Budget:
    return Budget(get_redis(), run.uid.hex, key_prefix=settings.HARNESS_REDIS_PREFIX)


def step_reservation_id(task_id: int, index: int, generation: int = 0) -> str:
    """The budget reservation of one model call. A new try's calls reuse the indexes of the
    earlier ones, so their ids carry the try: the earlier calls' ids are settled already, and a
    settle under one of them would count nothing."""
    return f"t{task_id}:s{index}" + (f":g{generation}" if generation else "")


def rebuild_budget(run: Run) -> bool:
    """Write the run's budget state from the database unless Redis already holds it.

    Spent = every stored model call of the run (finished or not: a step is stored before it is
    settled, and a failed agent's calls were paid for too), and those calls' reservation ids
    are marked settled so a late settle of one of them counts once. Called at planning and
    whenever a worker finds the state missing (expired, Redis restarted) or foreign.
    """
    chat = Step.objects.filter(task__run=run, kind="chat")
    totals = chat.aggregate(
        usd=Sum("cost_usd"),
        tokens=Sum(F("tokens_in") + F("tokens_out")),
        output=Sum("tokens_out"),
        calls=Count("id"),
    )
    tops = dict(
        Step.objects.filter(task__run=run, index__gte=TRY_SPAN)
        .values_list("task_id")
        .annotate(top=Max("index"))
        .values_list("task_id", "top")
    )
    settled = [
        step_reservation_id(t, i, try_generation(tops.get(t)))
        for t, i in chat.values_list("task_id", "index")
    ]
    rebuilt = budget_for(run).rebuild(
        float(run.budget_usd) if run.budget_usd is not None else None,
        int(run.budget_tokens) if run.budget_tokens is not None else None,
        spent_usd=float(totals["usd"] or 0),
        spent_tokens=int(totals["tokens"] or 0),
        settled_ids=settled,
        exhausted=run.status == Run.Status.BUDGET_EXHAUSTED,
        calls=int(totals["calls"] or 0),
        output_tokens=int(totals["output"] or 0),
    )
    if rebuilt:
        # Its subtrees' allowances went with it: back from the tasks that recorded them.
        rebuild_scopes(run)
    return rebuilt


def spent_reason(run: Run, *, in_flight: int = 0) -> str:
    """Why a run is ``budget_exhausted``, with what it spent, e.g. "budget exhausted ($0.0297
    of $0.0300 used, 99%)". Written when the budget runs out and again when the run finishes
    (every agent's calls paid: the run's cost is final then), so the reason a run ends with
    states its final spend; ``in_flight`` agents still working make it say "so far"."""
    limit = run.budget_usd
    if not limit:
        return "budget exhausted"
    spent = run.cost_usd
    # Four decimals unless the budget is below a cent: then six, so it never reads "$0.0000".
    places = 4 if limit >= Decimal("0.01") else 6
    figure = f"${spent:.{places}f} of ${limit:.{places}f} used"
    share = f"{100 * spent / limit:.0f}%"
    if in_flight:
        agents = "agent" if in_flight == 1 else "agents"
        return f"budget exhausted ({figure} so far, {share}; {in_flight} {agents} finishing)"
    return f"budget exhausted ({figure}, {share})"
