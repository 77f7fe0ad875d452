"""Modules that a process may import first (a spawned test process, a script, a worker) import
on their own: an import cycle shows only when its first module is imported first, so each is
imported alone in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

FIRST_IMPORTS = [
    "agents.providers.heuristic",
    "agents.providers.catalog",
    "agents.judging.offline",
    "agents.aggregation.similarity",
    "agents.aggregation.stages",
    "agents.evaluation.offline",
    "agents.planning",
]


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_a_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
