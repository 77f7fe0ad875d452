"""Tiered models' options: thresholds and the depth model checked at launch, each refused on
its own field with nothing created; accepted ones frozen into the run (the depth role's
model too)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from runs.actions import LaunchError, launch_run
from runs.models import Run
from tests.runs.test_launch import SAMPLE, form_data, nothing_created
from tests.runs.test_launch_estimate import estimate
from tests.runs.test_launch_options import field_errors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("escalate_severity", "urgent", "Escalate severity must be one of info, low, medium"),
        ("escalate_severity", 3, "Escalate severity must be one of"),
        ("escalate_confidence", "1.5", "Escalate confidence must be a number from 0 to 1"),
        ("escalate_confidence", "-0.1", "Escalate confidence must be a number from 0 to 1"),
        ("escalate_confidence", "high", "Escalate confidence must be a number from 0 to 1"),
        ("escalate_confidence", "nan", "Escalate confidence must be a number from 0 to 1"),
        ("depth_model", "x" * 201, "Depth model must be a model name"),
    ],
)
def test_a_bad_threshold_is_refused_on_its_field_and_creates_nothing(
    option: str, value: object, words: str
) -> None:
    with pytest.raises(LaunchError) as info:
        launch_run(
            user=None, playbook="codebase-audit", target_path=SAMPLE, options={option: value}
        )
    assert info.value.field == option
    assert words in str(info.value)
    assert nothing_created()


def test_the_form_shows_a_bad_threshold_on_its_field(operator_client: Client) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'name="escalate_severity"' in html and 'name="escalate_confidence"' in html
    assert 'name="model_verifier"' in html  # the depth role's model
    response = operator_client.post(
        reverse("runs:launch"), form_data(escalate_confidence="2", escalate_severity="huge")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Escalate confidence must be a number from 0 to 1" in field_errors(
        page, "escalate_confidence"
    )
    assert "Escalate severity must be one of" in field_errors(page, "escalate_severity")
    assert nothing_created()


def test_launch_run_refuses_a_bad_threshold_with_json_on_stdout() -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(
            "launch_run",
            "--playbook=codebase-audit",
            f"--target={SAMPLE}",
            "--set",
            "escalate_severity=severe",
            "--json",
            stdout=out,
            stderr=io.StringIO(),
        )
    assert "(escalate_severity)" in str(info.value)
    refusal = json.loads(out.getvalue())
    assert refusal["field"] == "escalate_severity"
    assert "Escalate severity must be one of" in refusal["reason"]
    assert nothing_created()


def test_thresholds_and_depth_model_reach_the_run(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(escalate_severity="High", escalate_confidence="0.5", model_verifier="strong-1"),
    )
    assert response.status_code == 302
    config = Run.objects.get().config
    assert config["options"]["escalate_severity"] == "high"
    assert config["options"]["escalate_confidence"] == 0.5
    assert config["roles"]["verifier"]["model"] == "strong-1"


def test_the_depth_model_option_sets_the_depth_roles_model_only() -> None:
    run = launch_run(
        user=None,
        playbook="codebase-audit",
        target_path=SAMPLE,
        model="cheap-1",
        options={"escalate_severity": "medium", "depth_model": "strong-2"},
    )
    roles = run.config["roles"]
    assert roles["verifier"]["model"] == "strong-2"
    assert roles["auditor"]["model"] == "cheap-1"


def test_the_estimate_prices_the_depth_tier_on_its_own_model(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    params: dict[str, Any] = {"playbook": "codebase-audit", "target": SAMPLE, "provider": "openai"}
    without = estimate(operator_client, **params).content.decode()
    assert "<td>verifier</td>" not in without
    html = estimate(
        operator_client, **params, escalate_severity="high", model_verifier="gpt-4o"
    ).content.decode()
    # One depth agent at most per breadth agent (9: 3 lenses x 3 chunks), on the depth model.
    assert re.search(r"<td>verifier</td><td class=\"mono\">openai · gpt-4o</td><td>9</td>", html)
    low = re.search(r"Estimated cost:\s*<b>\$(\d+\.\d+)", html)
    low_without = re.search(r"Estimated cost:\s*<b>\$(\d+\.\d+)", without)
    assert low and low_without and float(low.group(1)) > float(low_without.group(1))
