"""The run page's budget gauge says what it measures from the first render: before any spend it
reads "nothing spent yet of $2.50", not an empty bar, and later the spend of the ceiling."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Task
from tests.runs.factories import make_run, make_task

pytestmark = pytest.mark.django_db


def _budget_panel(client: Client, run_id: int) -> str:
    html = client.get(reverse("runs:detail", args=[run_id])).content.decode()
    return html[html.index('<section id="run-budget"') :].split("</section>", 1)[0]


def _gauge_label(panel: str) -> str:
    (label,) = re.findall(r'<text [^>]*class="g-label"[^>]*>([^<]*)</text>', panel)
    return label


def test_the_gauge_states_the_budget_and_no_spend_before_any_agent_paid(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator, budget_usd=Decimal("2.50"))
    make_task(run, status=Task.Status.RUNNING, cost_usd=Decimal("0"), finished_at=None)
    panel = _budget_panel(viewer_client, run.pk)
    assert _gauge_label(panel) == "nothing spent yet of $2.50"
    assert 'aria-label="Budget used: 0 percent (nothing spent yet of $2.50)"' in panel
    # No forecast yet, so no forecast swatch in the legend either.
    assert "sw-forecast" not in panel and "after the first agents finish" in panel

    make_task(run, status=Task.Status.SUCCEEDED, cost_usd=Decimal("0.5"), tokens_in=900)
    assert _gauge_label(_budget_panel(viewer_client, run.pk)) == "$0.5000 of $2.50 (20%)"


def test_a_token_only_budget_is_stated_in_tokens(viewer_client: Client, operator: User) -> None:
    run = make_run(operator, budget_usd=None, budget_tokens=10_000)
    assert (
        _gauge_label(_budget_panel(viewer_client, run.pk)) == "nothing spent yet of 10,000 tokens"
    )
    make_task(run, status=Task.Status.SUCCEEDED, tokens_in=2_000, tokens_out=500)
    label = _gauge_label(_budget_panel(viewer_client, run.pk))
    assert label == "2,500 of 10,000 tokens (25%)"
