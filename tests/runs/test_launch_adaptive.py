"""The ``adaptive`` option at launch: a clear yes or no, on the playbook that can take it, its
error on its own field and nothing created otherwise; the plan then starts the scouts only."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from agents.planning import plan
from agents.snapshot import open_snapshot
from runs.actions import LaunchError, launch_run
from runs.benchmarks.uneven import write_uneven_target
from runs.models import Run
from tests.runs.test_launch import form_data, nothing_created

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    write_uneven_target(tmp_path / "t", seed=3, folders=4, files=10, flawed=1, stray=0)
    return tmp_path / "t"


@pytest.mark.parametrize("value", ["maybe", 2, "", [True]])
def test_a_bad_adaptive_value_is_refused_on_its_field_and_creates_nothing(
    target: Path, value: Any
) -> None:
    if value == "":
        value = "sometimes"
    with pytest.raises(LaunchError) as info:
        launch_run(
            user=None,
            playbook="codebase-audit",
            target_path=str(target),
            options={"adaptive": value},
        )
    assert info.value.field == "adaptive"
    assert str(info.value) == "Adaptive fan-out must be true or false."
    assert nothing_created()


def test_launch_run_refuses_a_bad_value_with_a_json_refusal(target: Path) -> None:
    out = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "launch_run",
            playbook="codebase-audit",
            target=str(target),
            options=["adaptive=perhaps"],
            json=True,
            stdout=out,
        )
    refusal = json.loads(out.getvalue().strip().splitlines()[-1])
    assert refusal == {
        "status": "refused",
        "reason": "Adaptive fan-out must be true or false.",
        "field": "adaptive",
    }
    assert nothing_created()


def test_playbooks_without_interchangeable_chunks_refuse_the_option(target: Path) -> None:
    with pytest.raises(LaunchError) as info:
        launch_run(
            user=None, playbook="ensemble", target_path=str(target), options={"adaptive": True}
        )
    assert info.value.field == "options"
    assert "Unknown option 'adaptive' for ensemble" in str(info.value)
    assert nothing_created()


def test_an_adaptive_plan_starts_two_scout_chunks_per_folder_through_every_lens(
    target: Path,
) -> None:
    full = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        options={"chunk_files": 1},
    )
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=str(target),
        options={"chunk_files": 1, "adaptive": "true"},
    )
    assert run.config["options"]["adaptive"] is True
    manifest = open_snapshot(run.snapshot_ref).manifest.to_dict()
    scouts = plan(run.resolved_playbook, manifest)
    every = plan(full.resolved_playbook, manifest)
    assert len(every) == 4 * 10 * 3
    assert len(scouts) == 4 * 2 * 3  # a fifth of each folder's 10 chunks, 3 lenses each
    assert {s.group for s in scouts} == {s.group for s in every}
    assert {s.key for s in scouts} <= {s.key for s in every}
    assert len({s.scope_label for s in scouts}) == 8


def test_the_form_offers_the_box_for_the_audit_and_it_reaches_the_run(
    operator_client: Client,
) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'type="checkbox" name="adaptive"' in html
    assert 'data-playbooks="codebase-audit"><label for="id_adaptive"' in html
    response = operator_client.post(reverse("runs:launch"), form_data(adaptive="on"))
    assert response.status_code == 302
    assert Run.objects.get().config["options"]["adaptive"] is True
