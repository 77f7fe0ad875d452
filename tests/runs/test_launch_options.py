"""The launch form's playbook options: bounded on the server, errors on their own field,
ignored for other playbooks; unconfigured providers marked and refused on the field."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from agents.aggregation.stages import TUNABLES
from agents.playbooks import PLAYBOOKS
from runs.actions import LaunchError, launch_options, launch_run
from runs.actions.launch_options import option_bounds, playbook_options
from runs.models import Run
from tests.runs.test_launch import form_data, nothing_created

pytestmark = pytest.mark.django_db

CORPUS = str((settings.BASE_DIR / "samples" / "corpus").resolve())


def field_errors(html: str, name: str) -> str:
    """The markup right after the field named ``name``: where its error list is rendered."""
    return html.split(f'name="{name}"', 1)[1][:1200]


@pytest.mark.parametrize(
    ("playbook", "option"), [("ensemble", "k"), ("codebase-audit", "chunk_files")]
)
@pytest.mark.parametrize("side", ["below", "above"])
def test_an_option_out_of_bounds_is_an_error_on_its_field_and_creates_nothing(
    operator_client: Client, playbook: str, option: str, side: str
) -> None:
    low, high = option_bounds()[option]
    value = low - 1 if side == "below" else high + 1
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook=playbook, **{option: value})
    )
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), option)
    assert "errorlist" in errors and f"must be between {low} and {high}" in errors
    assert nothing_created()


def test_a_garbage_option_is_an_error_on_its_field(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook="ensemble", k="9e9x")
    )
    assert response.status_code == 400
    assert "Voters (K) must be a whole number." in field_errors(response.content.decode(), "k")
    assert nothing_created()


def test_options_of_another_playbook_are_ignored(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook="codebase-audit", k="garbage", document="x")
    )
    assert response.status_code == 302
    options = Run.objects.get().config["options"]
    assert "k" not in options and "document" not in options


def test_chosen_options_reach_the_run(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook="ensemble", k="3", max_agents="40")
    )
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.config["options"]["k"] == 3
    assert run.max_agents == 40 and run.config["max_agents"] == 40


def test_max_agents_defaults_to_the_playbooks_capped_by_the_setting(settings: Any) -> None:
    from runs.forms import LaunchForm

    assert LaunchForm().initial["max_agents"] == 500
    settings.HARNESS_MAX_AGENTS = 50
    form = LaunchForm()
    assert form.initial["max_agents"] == 50
    assert form.fields["max_agents"].widget.attrs["max"] == 50


def test_max_agents_above_the_setting_is_refused_on_the_field(
    operator_client: Client, settings: Any
) -> None:
    settings.HARNESS_MAX_AGENTS = 10
    response = operator_client.post(reverse("runs:launch"), form_data(max_agents="11"))
    assert response.status_code == 400
    assert "less than or equal to 10" in field_errors(response.content.decode(), "max_agents")
    assert nothing_created()


def test_max_agents_above_the_setting_is_refused_by_launch_run_too(settings: Any) -> None:
    settings.HARNESS_MAX_AGENTS = 10
    with pytest.raises(LaunchError) as info:
        launch_run(user=None, playbook="ensemble", target_path=CORPUS, options={"max_agents": 11})
    assert info.value.field == "max_agents"
    with pytest.raises(LaunchError) as info:
        launch_run(user=None, playbook="ensemble", target_path=CORPUS, options={"k": 0})
    assert info.value.field == "k"
    assert not Run.objects.exists()


def test_a_document_not_in_the_target_is_refused_on_the_document_field(
    operator_client: Client,
) -> None:
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(playbook="multi-perspective-review", target=CORPUS, document="nope.md"),
    )
    assert response.status_code == 400
    assert "is not in the target" in field_errors(response.content.decode(), "document")
    assert nothing_created()


def test_every_document_can_be_chosen_for_the_review(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(playbook="multi-perspective-review", target=CORPUS, document="*"),
    )
    assert response.status_code == 302
    assert Run.objects.get().config["options"]["document"] == "*"


def test_without_js_every_option_is_shown_naming_its_playbooks(operator_client: Client) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    for name, playbook in [
        ("k", "ensemble"),
        ("chunk_files", "codebase-audit"),
        ("document", "multi-perspective-review"),
    ]:
        assert f'data-playbooks="{playbook}"' in html
        assert f'name="{name}"' in html
    assert 'name="max_agents"' in html and 'value="500"' in html


def test_an_unconfigured_provider_is_marked_and_refused_on_its_field(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert "openai — needs OPENAI_API_KEY" in html
    assert "Offline analyzer (heuristic, no LLM)<" in html  # needs nothing: not marked
    response = operator_client.post(reverse("runs:launch"), form_data(provider="openai"))
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "provider")
    assert "errorlist" in errors and "set the environment variable OPENAI_API_KEY" in errors
    assert nothing_created()


SAMPLE = str((settings.BASE_DIR / "samples" / "vulnerable_app").resolve())


@pytest.mark.parametrize(
    ("playbook", "target", "options"),
    [
        (
            "codebase-audit",
            SAMPLE,
            {
                "chunk_bytes": 10_000,
                "agent_max_files": 3,
                "agent_max_bytes": 20_000,
                "dedup_threshold": 0.3,
                "line_window": 5,
                "vote_quorum": 2,
                "lens_quorum": 1,
                "min_confidence": 0.2,
                "top_k": 10,
                "embedder": "tfidf",
            },
        ),
        ("ensemble", SAMPLE, {"sample_fraction": 0.5, "vote_quorum": 3}),
        ("document-synthesis", CORPUS, {"max_documents": 3}),
    ],
)
def test_tunables_the_playbook_or_the_aggregation_reads_are_accepted(
    playbook: str, target: str, options: dict[str, Any]
) -> None:
    run = launch_run(user=None, playbook=playbook, target_path=target, options=options)
    assert run.config["options"].items() >= options.items()


def test_an_unknown_option_is_refused_naming_the_playbooks_options() -> None:
    with pytest.raises(LaunchError) as info:
        launch_run(user=None, playbook="codebase-audit", target_path=SAMPLE, options={"k": 3})
    message = str(info.value)
    assert info.value.field == "options"
    assert message.startswith("Unknown option 'k' for codebase-audit. Its options: ")
    named = message.split("Its options: ", 1)[1].rstrip(".").split(", ")
    assert named == playbook_options(PLAYBOOKS["codebase-audit"])
    assert {"chunk_files", "chunk_bytes", "max_agents", "vote_quorum", "embedder"} <= set(named)
    assert "sample_fraction" not in named and "k" not in named  # the ensemble's
    assert not Run.objects.exists()


def test_options_reserved_for_later_are_refused_as_not_available_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None is reserved today (adaptive and budget_split have landed); the mechanism stays for
    # the next name announced before its feature.
    monkeypatch.setitem(launch_options.RESERVED_OPTIONS, "vote_quorum", "a later feature")
    with pytest.raises(LaunchError) as info:
        launch_run(user=None, playbook="ensemble", target_path=SAMPLE, options={"vote_quorum": 2})
    assert info.value.field == "options"
    assert "The option 'vote_quorum' is not available yet" in str(info.value)
    assert not Run.objects.exists()


@pytest.mark.parametrize("name", ["adaptive", "budget_split"])
def test_the_options_once_reserved_are_real_now(name: str) -> None:
    assert name not in launch_options.RESERVED_OPTIONS


def test_the_allowed_options_follow_the_declarations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built from what the playbook and the aggregation declare, not from a copy: a tunable
    the chain starts reading is accepted at launch with no other change."""
    monkeypatch.setitem(TUNABLES, "new_knob", (int, 1, 0, 9))
    run = launch_run(user=None, playbook="ensemble", target_path=SAMPLE, options={"new_knob": 4})
    assert run.config["options"]["new_knob"] == 4
    for book in PLAYBOOKS.values():
        assert set(book.options) | {"max_agents", "new_knob"} <= set(playbook_options(book))


def test_the_ensemble_judge_mode_is_on_the_form_and_reaches_the_run(
    operator_client: Client,
) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'name="mode"' in html and 'name="judging"' in html
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(playbook="ensemble", k="3", mode="judge", judging="rubric", max_agents="40"),
    )
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.config["options"]["mode"] == "judge"
    assert run.config["options"]["judging"] == "rubric"
    assert run.resolved_playbook.options["mode"] == "judge"


def test_an_unknown_judge_mode_is_an_error_on_its_field(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook="ensemble", mode="jury")
    )
    assert response.status_code == 400
    assert "mode must be one of vote, judge" in field_errors(response.content.decode(), "mode")
    assert nothing_created()


def test_voter_models_are_on_the_form_and_reach_the_voters(operator_client: Client) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'name="voter_models"' in html
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(playbook="ensemble", k="2", voter_models="m-one, m-two", max_agents="40"),
    )
    assert response.status_code == 302
    # Planned by a worker: tests/engine/test_judged_ensemble_run.py checks each voter's model.
    assert Run.objects.get().config["options"]["voter_models"] == "m-one, m-two"


def test_a_bad_voter_model_is_refused_and_creates_nothing(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook="ensemble", voter_models="ok, not ok")
    )
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "voter_models")
    assert "voter_models: &#x27;not ok&#x27; is not a model name" in errors
    assert nothing_created()


def test_an_evaluations_dimensions_and_judges_are_on_the_form_and_reach_its_plan(
    operator_client: Client,
) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'name="dimensions"' in html and 'name="judges"' in html
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(
            playbook="evaluation",
            target=str((settings.BASE_DIR / "samples" / "evaluation").resolve()),
            dimensions="correctness",
            judges="2",
            max_depth=1,
            aggregation=["confidence", "synthesis", "critic"],
        ),
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    options = Run.objects.get().config["options"]
    assert (options["dimensions"], str(options["judges"])) == ("correctness", "2")


@pytest.mark.parametrize("value", ["sized", "", 3, None, "equal;none", "Size"])
def test_a_bad_budget_split_is_refused_on_its_field_and_creates_nothing(value: Any) -> None:
    with pytest.raises(LaunchError) as info:
        launch_run(
            user=None, playbook="ensemble", target_path=SAMPLE, options={"budget_split": value}
        )
    assert info.value.field == "budget_split"
    assert "Budget split must be one of none, equal, size" in str(info.value)
    assert not Run.objects.exists()


@pytest.mark.parametrize("value", ["none", "equal", "size"])
def test_a_budget_split_is_frozen_in_the_runs_config(value: str) -> None:
    run = launch_run(
        user=None, playbook="ensemble", target_path=SAMPLE, options={"budget_split": value}
    )
    assert run.config["options"]["budget_split"] == value


def test_the_budget_split_defaults_to_none() -> None:
    run = launch_run(user=None, playbook="ensemble", target_path=SAMPLE)
    assert run.config["options"]["budget_split"] == "none"


def test_the_form_offers_the_budget_split_and_refuses_a_bad_one_on_its_field(
    operator_client: Client,
) -> None:
    page = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'name="budget_split"' in page and '<option value="none" selected>' in page
    response = operator_client.post(
        reverse("runs:launch"), form_data(playbook="codebase-audit", budget_split="greedy")
    )
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "budget_split")
    assert "errorlist" in errors and "Budget split must be one of none, equal, size" in errors
    assert nothing_created()
