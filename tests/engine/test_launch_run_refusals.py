"""`manage.py launch_run` refusing a launch, as a user runs it: exit status 1, the reason on
stderr, and with ``--json`` one JSON object on stdout that says so. Nothing is created."""

from __future__ import annotations

import json

import pytest

from runs.models import Run
from tests.engine.test_launch_run_command import launch_run_command

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

AUDIT = ("--playbook", "codebase-audit", "--target", "samples/vulnerable_app")


def refused(*args: str) -> dict[str, object]:
    """The command's JSON answer to a launch it refuses (exit status 1, one object)."""
    result = launch_run_command(*args, "--json", timeout=120)
    assert result.returncode == 1, (result.stdout, result.stderr)
    answer = json.loads(result.stdout)  # one object, nothing else on stdout
    assert answer["status"] == "refused"
    assert answer["reason"] and answer["reason"] in result.stderr
    assert not Run.objects.exists()
    return answer


def test_a_refused_launch_prints_one_json_object_saying_why() -> None:
    answer = refused("--playbook", "codebase-audit", "--target", "/etc")
    assert "outside the allowed folders" in str(answer["reason"])
    assert answer["field"] == "target"
    answer = refused("--playbook", "no-such-playbook", "--target", "samples/vulnerable_app")
    assert answer["reason"] == "Unknown playbook 'no-such-playbook'."


def test_a_malformed_set_is_refused_in_json_too() -> None:
    answer = refused(*AUDIT, "--set", "chunk_files")
    assert answer["reason"] == "--set takes key=value, got 'chunk_files'"


def test_an_unknown_set_key_is_refused_naming_the_playbooks_options() -> None:
    answer = refused(*AUDIT, "--set", "chunk_file=2")
    reason = str(answer["reason"])
    assert reason.startswith("Unknown option 'chunk_file' for codebase-audit.")
    for name in ("chunk_files", "chunk_bytes", "max_agents", "exclude", "dedup_threshold"):
        assert name in reason
    assert "sample_fraction" not in reason  # the ensemble's, not the audit's
    assert answer["field"] == "options"


def test_a_bad_adaptive_value_is_refused_on_its_field() -> None:
    answer = refused(*AUDIT, "--set", "adaptive=perhaps")
    assert answer["reason"] == "Adaptive fan-out must be true or false."
    assert answer["field"] == "adaptive"


def test_a_bad_budget_split_is_refused_on_its_field() -> None:
    answer = refused(*AUDIT, "--set", "budget_split=biggest")
    assert str(answer["reason"]).startswith("Budget split must be one of none, equal, size")
    assert answer["field"] == "budget_split"


def test_without_json_the_refusal_is_on_stderr_and_stdout_stays_empty() -> None:
    result = launch_run_command(*AUDIT, "--set", "chunk_files", timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Launch refused (options): --set takes key=value" in result.stderr
    result = launch_run_command(*AUDIT, "--set", "chunk_file=2", timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Launch refused (options): Unknown option 'chunk_file'" in result.stderr
