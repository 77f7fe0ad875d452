"""docs/grafana-dashboard.json asks only for series /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runs.observability.counters import counters
from runs.observability.metrics import registry

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


@pytest.mark.django_db
def test_every_series_the_dashboard_plots_is_exposed() -> None:
    # Every counter exists once something was counted; count one of each so all are listed.
    for name, labels in [
        ("agent_completions", {"status": "succeeded"}),
        ("model_calls", {"provider": "p", "model": "m"}),
        ("model_tokens", {"provider": "p", "model": "m", "direction": "input"}),
        ("model_cost_usd", {"provider": "p", "model": "m"}),
        ("budget_reservations_refused", {"provider": "p", "outcome": "wait"}),
        ("webhook_failures", {"kind": "run.finished", "outcome": "failed"}),
    ]:
        counters.add(name, 0.000001, **labels)
    counters.flush()
    text = generate_latest(registry()).decode()
    families = list(text_string_to_metric_families(text))
    # A per-run gauge with no active run has no sample yet, but its family is listed.
    exposed = {f.name for f in families} | {s.name for f in families for s in f.samples}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    plotted = {name for expr in exprs for name in re.findall(r"harness_[a-z_]+", expr)}
    assert plotted, "the dashboard plots nothing"
    assert plotted <= exposed, plotted - exposed
