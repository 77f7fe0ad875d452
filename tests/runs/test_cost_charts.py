"""The cost panel's "Top agents" charts: each lists the agents that spent most of its own metric,
largest first."""

from __future__ import annotations

import re
from decimal import Decimal

from runs.models import Task
from runs.pages.run import charts, dashboard


def _task(pk: int, cost: str, tokens: int) -> Task:
    return Task(
        id=pk, step="audit", lens=f"l{pk}", cost_usd=Decimal(cost), tokens_in=tokens, tokens_out=0
    )


def _values(svg: str) -> list[str]:
    return re.findall(r'class="c-value">([^<]+)<', svg)


def test_top_agents_by_tokens_are_the_biggest_token_users_in_token_order() -> None:
    # Cost and tokens disagree: the cheapest agent read the most.
    tasks = [_task(1, "0.05", 100), _task(2, "0.04", 9000), _task(3, "0.03", 500)]
    tasks += [_task(10 + i, "0.02", 10) for i in range(20)]
    by_tokens = dashboard.cost_by_agent(tasks, limit=3, by="tokens")
    assert [r.task_id for r in by_tokens] == [2, 3, 1]
    assert _values(charts.bar_chart(by_tokens, metric="tokens")) == ["9,000", "500", "100"]
    by_cost = dashboard.cost_by_agent(tasks, limit=3)
    assert [r.task_id for r in by_cost] == [1, 2, 3]


def test_a_bar_chart_is_drawn_largest_first_whatever_order_it_is_given() -> None:
    rows = dashboard.cost_by_agent([_task(1, "0.01", 5), _task(2, "0.02", 50)], by="cost")
    assert _values(charts.bar_chart(rows, metric="tokens")) == ["50", "5"]
    assert _values(charts.bar_chart(list(reversed(rows)), metric="cost")) == ["$0.0200", "$0.0100"]
