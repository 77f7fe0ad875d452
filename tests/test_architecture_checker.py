"""scripts/check_architecture.py, run as a script against small synthetic trees in tmp_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CLEAN_TREE = {
    "harness_site/__init__.py": "",
    "harness_site/settings.py": "import os\n\nDEBUG = os.environ.get('DEBUG') == '1'\n",
    "agents/__init__.py": "",
    "agents/engine.py": "from harness_site import settings\n\nfrom agents import limits\n",
    "agents/limits.py": "MAX = 3\n",
    "runs/__init__.py": "",
    "runs/views.py": "from agents.engine import settings\nfrom harness_site import settings as s\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def run_checker(
    root: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    write_tree(root, {**CLEAN_TREE, **(extra or {})})
    return subprocess.run(
        [sys.executable, "scripts/check_architecture.py", "--root", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_clean_tree_passes(tmp_path: Path) -> None:
    result = run_checker(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"architecture ok ({len(CLEAN_TREE)} files)"


def test_agents_importing_runs_is_refused(tmp_path: Path) -> None:
    result = run_checker(tmp_path, {"agents/bad.py": "import os\nfrom runs.models import Run\n"})
    assert result.returncode == 1
    assert "agents/bad.py:2: rule 1" in result.stdout


@pytest.mark.parametrize(
    "line", ["import runs", "import runs.models", "from runs import models", "from runs.x import y"]
)
def test_every_form_of_importing_runs_from_agents_is_refused(tmp_path: Path, line: str) -> None:
    result = run_checker(tmp_path, {"agents/bad.py": f"{line}\n"})
    assert result.returncode == 1
    assert "agents/bad.py:1: rule 1" in result.stdout


def test_agents_importing_runs_under_type_checking_is_refused(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from runs.models import Run\n"
    )
    result = run_checker(tmp_path, {"agents/typed.py": source})
    assert result.returncode == 1
    assert "agents/typed.py:4: rule 1" in result.stdout


def test_relative_import_at_module_level_stays_in_its_own_package(tmp_path: Path) -> None:
    # agents/ is not runs/: a relative import never leaves its own top-level package.
    result = run_checker(
        tmp_path, {"agents/sub/__init__.py": "", "agents/sub/m.py": "from .. import x\n"}
    )
    assert result.returncode == 0, result.stdout


def test_harness_site_importing_agents_is_refused(tmp_path: Path) -> None:
    result = run_checker(tmp_path, {"harness_site/telemetry.py": "\nfrom agents import spans\n"})
    assert result.returncode == 1
    assert "harness_site/telemetry.py:2: rule 1" in result.stdout


def test_harness_site_importing_runs_is_refused_outside_the_wiring_files(tmp_path: Path) -> None:
    result = run_checker(tmp_path, {"harness_site/celery.py": "import runs.tasks\n"})
    assert result.returncode == 1
    assert "harness_site/celery.py:1: rule 1" in result.stdout


@pytest.mark.parametrize("name", ["harness_site/urls.py", "harness_site/asgi.py"])
def test_wiring_files_may_import_runs(tmp_path: Path, name: str) -> None:
    result = run_checker(tmp_path, {name: "from runs import views\nimport runs.routing\n"})
    assert result.returncode == 0, result.stdout


def test_wiring_files_may_not_import_agents(tmp_path: Path) -> None:
    result = run_checker(tmp_path, {"harness_site/urls.py": "from agents import engine\n"})
    assert result.returncode == 1
    assert "harness_site/urls.py:1: rule 1" in result.stdout


def test_first_party_import_inside_a_function_is_refused(tmp_path: Path) -> None:
    source = "def go() -> None:\n    from agents.limits import MAX\n"
    result = run_checker(tmp_path, {"runs/lazy.py": source})
    assert result.returncode == 1
    assert "runs/lazy.py:2: rule 2" in result.stdout


def test_first_party_import_nested_in_a_method_is_refused(tmp_path: Path) -> None:
    source = (
        "class C:\n"
        "    async def m(self) -> None:\n"
        "        def inner() -> None:\n"
        "            if True:\n"
        "                import harness_site.settings\n"
    )
    result = run_checker(tmp_path, {"runs/nested.py": source})
    assert result.returncode == 1
    assert "runs/nested.py:5: rule 2" in result.stdout


def test_third_party_import_inside_a_function_is_allowed(tmp_path: Path) -> None:
    source = "def go() -> None:\n    import json\n    from collections import abc\n"
    result = run_checker(tmp_path, {"agents/lazy.py": source})
    assert result.returncode == 0, result.stdout


def test_relative_import_inside_a_function_is_refused(tmp_path: Path) -> None:
    source = "def go() -> None:\n    from . import limits\n"
    result = run_checker(tmp_path, {"agents/lazy.py": source})
    assert result.returncode == 1
    assert "agents/lazy.py:2: rule 2" in result.stdout


def test_allow_comment_with_a_reason_exempts_a_function_import(tmp_path: Path) -> None:
    source = (
        "def go() -> None:\n"
        "    from agents import limits  # architecture: allow Celery loads tasks after setup\n"
    )
    result = run_checker(tmp_path, {"agents/lazy.py": source})
    assert result.returncode == 0, result.stdout


def test_allow_comment_without_a_reason_is_refused(tmp_path: Path) -> None:
    source = "def go() -> None:\n    from agents import limits  # architecture: allow\n"
    result = run_checker(tmp_path, {"agents/lazy.py": source})
    assert result.returncode == 1
    assert "agents/lazy.py:2: rule 2" in result.stdout
    assert "needs a reason" in result.stdout


def test_allow_comment_does_not_exempt_the_import_direction(tmp_path: Path) -> None:
    source = "def go() -> None:\n    from runs import models  # architecture: allow no excuse\n"
    result = run_checker(tmp_path, {"agents/lazy.py": source})
    assert result.returncode == 1
    assert "agents/lazy.py:2: rule 1" in result.stdout
    assert "rule 2" not in result.stdout


def test_a_501_line_module_is_refused(tmp_path: Path) -> None:
    result = run_checker(tmp_path, {"agents/big.py": "x = 1\n" * 501})
    assert result.returncode == 1
    assert "agents/big.py:501: rule 3" in result.stdout


def test_a_500_line_module_is_allowed(tmp_path: Path) -> None:
    result = run_checker(tmp_path, {"agents/big.py": "x = 1\n" * 500})
    assert result.returncode == 0, result.stdout


def test_long_scripts_are_refused_but_long_tests_are_not(tmp_path: Path) -> None:
    long = "x = 1\n" * 501
    result = run_checker(tmp_path, {"scripts/tool.py": long, "runs/tests/test_x.py": long})
    assert result.returncode == 1
    assert "scripts/tool.py:501: rule 3" in result.stdout
    assert "runs/tests" not in result.stdout


def test_migrations_are_ignored(tmp_path: Path) -> None:
    migration = "from agents import engine\n\ndef f() -> None:\n    from runs import x\n"
    extra = {
        "runs/migrations/__init__.py": "",
        "harness_site/migrations/0001_initial.py": migration,
    }
    result = run_checker(tmp_path, {**extra, "agents/migrations/0002.py": "x = 1\n" * 600})
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == f"architecture ok ({len(CLEAN_TREE)} files)"


def test_every_violation_is_listed(tmp_path: Path) -> None:
    extra = {
        "agents/a.py": "import runs\n",
        "harness_site/b.py": "import agents\n",
        "runs/c.py": "def f() -> None:\n    import runs\n",
    }
    result = run_checker(tmp_path, extra)
    assert result.returncode == 1
    reported = [line.split(": ")[0] for line in result.stdout.splitlines()]
    assert reported == ["agents/a.py:1", "runs/c.py:2", "harness_site/b.py:1"]


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("runs/consumers.py", "from runs.views.approvals import inbox_update"),
        ("runs/consumers.py", "from runs import views"),
        ("runs/pages/run.py", "from runs.actions import cancel_run"),
        ("runs/pages/run.py", "import runs.actions.launch"),
        ("runs/pages/agent.py", "from runs.views import records"),
        ("runs/pages/agent.py", "from runs.consumers import RunConsumer"),
        ("runs/actions/launch.py", "from runs.pages.run import live"),
        ("runs/models/task.py", "from runs.actions import dispatch"),
        ("runs/api/runs.py", "from runs.views.launch import launch"),
        ("runs/api/runs.py", "from runs.engine import worker"),
        ("runs/api/agents.py", "from runs.consumers import RunConsumer"),
    ],
)
def test_rooms_of_runs_import_downwards_only(tmp_path: Path, name: str, line: str) -> None:
    result = run_checker(tmp_path, {name: f"{line}\n"})
    assert result.returncode == 1
    assert f"{name}:1: rule 4" in result.stdout


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("runs/consumers.py", "from runs.pages.approvals import inbox_update"),
        ("runs/views/runs.py", "from runs.pages.run.live import run_context"),
        ("runs/views/runs.py", "from runs.actions import cancel_run"),
        ("runs/pages/run.py", "from runs.models import Run"),
        ("runs/actions/launch.py", "from runs.models import Run"),
        ("runs/pages/viewsets.py", "from runs.pages_extra import x"),
        ("runs/api/runs.py", "from runs.actions import launch_run"),
        ("runs/api/runs.py", "from runs.pages.runs_list import filtered_runs"),
        ("runs/api/reports.py", "from runs.forms import ReaggregateForm"),
    ],
)
def test_rooms_of_runs_may_import_downwards(tmp_path: Path, name: str, line: str) -> None:
    result = run_checker(tmp_path, {name: f"{line}\n"})
    assert result.returncode == 0, result.stdout
