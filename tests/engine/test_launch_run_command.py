"""`manage.py launch_run` as a user runs it: alone, it starts its own worker and prints JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runs.models import Run
from tests.conftest import ROOT, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def launch_run_command(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``manage.py launch_run`` in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "manage.py", "launch_run", *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_launch_run_alone_starts_its_worker_and_prints_the_summary():
    result = launch_run_command(
        "--playbook",
        "codebase-audit",
        "--target",
        "samples/vulnerable_app",
        "--max-concurrency",
        "3",
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) >= {
        "run_id",
        "status",
        "agents",
        "max_in_flight",
        "cost_usd",
        "budget_usd",
        "tokens",
        "findings",
        "events",
        "wall_seconds",
        "reason",
    }
    assert summary["status"] == "awaiting_review"
    # 3 chunks x 3 lenses; the security agents split their files to fit their output limit.
    assert summary["agents"] == {"total": 21, "succeeded": 21, "failed": 0, "skipped": 0}
    assert 1 <= summary["max_in_flight"] <= 3
    key = json.loads((ROOT / "samples" / "vulnerable_app.expected.json").read_text())
    # Every planted, unsuppressed problem of its answer key, no more.
    assert summary["findings"] == sum(1 for entry in key if not entry.get("suppressed"))
    assert 0 < summary["cost_usd"] <= summary["budget_usd"]
    assert "starting one" in result.stderr  # it said it started its own worker
    run = Run.objects.get(pk=summary["run_id"])
    assert run.events.count() == summary["events"]


def test_launch_run_refuses_a_target_outside_the_roots_and_creates_nothing():
    result = launch_run_command(
        "--playbook", "codebase-audit", "--target", "/etc", "--json", timeout=120
    )
    assert result.returncode != 0
    assert "outside the allowed folders" in result.stderr
    assert not Run.objects.exists()


def test_a_run_that_ends_early_says_why_and_exits_non_zero():
    result = launch_run_command(
        "--playbook",
        "codebase-audit",
        "--target",
        "samples/vulnerable_app",
        "--budget-usd",
        "0.000001",
        "--wait",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["status"] == "budget_exhausted"
    assert result.returncode == 3, result.stderr
    # With the share of the budget used when it ran out (nothing: not one call fitted).
    assert summary["reason"] == "budget exhausted ($0.000000 of $0.000001 used, 0%)"
    assert f"Run #{summary['run_id']} budget_exhausted: budget exhausted (" in result.stderr


def test_held_agents_end_the_wait_saying_where_to_approve_them():
    result = launch_run_command(
        "--playbook",
        "codebase-audit",
        "--target",
        "samples/vulnerable_app",
        "--hold-agents",
        "--wait",
        "--json",
    )
    assert result.returncode == 5, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "running"
    total = summary["agents"]["total"]
    assert total > 0 and summary["awaiting_approval"] == total
    assert summary["agents"]["succeeded"] == 0  # nothing started without an approval
    run_id = summary["run_id"]
    assert f"Run #{run_id}: {total} agents await approval" in result.stderr
    assert "/approvals/" in result.stderr and f"/runs/{run_id}/" in result.stderr
    run = Run.objects.get(pk=run_id)
    assert run.tasks.filter(status="awaiting_approval").count() == total
    assert run.approvals.filter(gate="task", decision="pending").count() == total
