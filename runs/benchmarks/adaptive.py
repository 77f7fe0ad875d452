"""``bench adaptive``: adaptive fan-out against the full fan-out on a target with uneven flaw
density (``runs.benchmarks.uneven``), audited with one file per chunk.

Each layout is audited twice through ``launch_run`` (the whole product path, the same workers):
every chunk through every lens, then with ``adaptive=true``. The figures: agents, cost and
distinct findings (path, line, rule) of each, and adaptive's share of the full run's. The
thresholds of ``agents.adaptive`` were chosen on the first layout (``TUNED``); the second
(``BLIND``, another seed and shape) was measured only after, as a check they were not fitted to
one tree.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management import call_command

from runs.benchmarks.uneven import write_uneven_target
from runs.models import Finding


@dataclass(frozen=True)
class Shape:
    seed: int
    folders: int
    files: int
    flawed: int
    stray: int
    tuned_on: bool

    @property
    def agents(self) -> int:
        return self.folders * self.files * 3  # three lenses, one file per chunk


TUNED = Shape(seed=1, folders=20, files=10, flawed=3, stray=1, tuned_on=True)
# Another seed and shape, first run after the thresholds were set (seed 7 of 24 folders of 8
# files served once before the tuning, so it no longer counts as unseen).
BLIND = Shape(seed=13, folders=16, files=12, flawed=3, stray=2, tuned_on=False)
SHAPES = (TUNED, BLIND)


def _audit(target: Path, shape: Shape, concurrency: int, adaptive: bool) -> dict[str, Any]:
    out = io.StringIO()
    options = ["chunk_files=1", f"max_agents={shape.agents}"]
    if adaptive:
        options.append("adaptive=true")
    call_command(
        "launch_run",
        playbook="codebase-audit",
        target=str(target),
        max_concurrency=concurrency,
        options=options,
        budget_usd="1000",
        wait=True,
        json=True,
        stdout=out,
    )
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    found = set(
        Finding.objects.filter(run_id=summary["run_id"]).values_list("path", "line_start", "rule")
    )
    return {
        "run_id": summary["run_id"],
        "status": summary["status"],
        "agents": summary["agents"]["total"],
        "cost_usd": summary["cost_usd"],
        "findings": len(found),
        "wall_s": summary["wall_seconds"],
        "found": found,
    }


def compare(root: Path, shape: Shape, concurrency: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameters, figures) of one layout: the full fan-out, then the adaptive one."""
    target = root / f"uneven-{shape.seed}"
    layout = write_uneven_target(
        target,
        seed=shape.seed,
        folders=shape.folders,
        files=shape.files,
        flawed=shape.flawed,
        stray=shape.stray,
    )
    full = _audit(target, shape, concurrency, adaptive=False)
    adaptive = _audit(target, shape, concurrency, adaptive=True)
    missed = sorted(
        f"{path}:{line} {rule}" for path, line, rule in full["found"] - adaptive["found"]
    )
    for run in (full, adaptive):
        run.pop("found")

    def share(key: str) -> float:
        whole = Decimal(str(full[key]))
        return float(round(Decimal(str(adaptive[key])) / whole, 3)) if whole else 0.0

    params = {**asdict(shape), "dense": layout.dense, "planted": layout.planted, "c": concurrency}
    figures = {
        "full": full,
        "adaptive": adaptive,
        "findings_share": share("findings"),
        "agents_share": share("agents"),
        "cost_share": share("cost_usd"),
        "missed": missed[:20],
    }
    return params, figures
