"""The launch form: operators only, clear field errors, nothing created when it is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from runs.models import Event, Run, Task

pytestmark = pytest.mark.django_db

SAMPLE = str((settings.BASE_DIR / "samples" / "vulnerable_app").resolve())


def form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "playbook": "codebase-audit",
        "target": SAMPLE,
        "provider": "heuristic",
        "max_concurrency": 4,
        "budget_usd": "2.50",
        "max_depth": 2,
        "aggregation": ["dedup", "synthesis"],
        "latency_ms": 0,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def nothing_created() -> bool:
    return not Run.objects.exists() and not Task.objects.exists() and not Event.objects.exists()


def test_form_offers_playbooks_targets_providers_and_chain(operator_client: Client) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert "Codebase audit" in html and "security, reliability, maintainability" in html
    assert "samples/vulnerable_app/" in html
    assert 'value="heuristic"' in html
    assert 'name="aggregation" value="dedup"' in html
    assert 'name="model_auditor"' in html


def test_operator_launches_and_lands_on_the_run_page(operator_client: Client) -> None:
    response = operator_client.post(reverse("runs:launch"), form_data(title="first audit"))
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == run.get_absolute_url()
    assert run.title == "first audit" and run.max_depth == 2
    assert run.aggregation == ["dedup", "synthesis"]
    assert run.launched_by is not None and run.launched_by.username.startswith("operator")


def test_missing_target_is_a_field_error_and_creates_nothing(operator_client: Client) -> None:
    response = operator_client.post(reverse("runs:launch"), form_data(target=""))
    assert response.status_code == 400
    assert "Choose a target or upload an archive." in response.content.decode()
    assert nothing_created()


def test_target_outside_the_list_is_refused(operator_client: Client) -> None:
    response = operator_client.post(reverse("runs:launch"), form_data(target="/etc"))
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert nothing_created()


def test_engine_refusal_lands_on_its_field_and_creates_nothing(operator_client: Client) -> None:
    # The form accepts 0; launch_run refuses it with LaunchError(field="budget_usd").
    response = operator_client.post(reverse("runs:launch"), form_data(budget_usd="0"))
    assert response.status_code == 400
    html = response.content.decode()
    errors = html.split('name="budget_usd"', 1)[1]
    assert "errorlist" in errors[:600]
    assert nothing_created()


def test_bad_numbers_are_field_errors(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(max_concurrency="0", max_depth="abc")
    )
    assert response.status_code == 400
    assert response.content.decode().count('class="errorlist') >= 2
    assert nothing_created()


def test_reviewer_and_viewer_cannot_launch(reviewer_client: Client, viewer_client: Client) -> None:
    for client in (reviewer_client, viewer_client):
        assert client.post(reverse("runs:launch"), form_data()).status_code == 403
    assert nothing_created()


def test_targets_are_directories_and_documents_under_the_roots(
    settings: Any, tmp_path: Any
) -> None:
    from runs.targets import available_targets

    (tmp_path / "repo" / "src" / "deep" / "deeper").mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    (tmp_path / "notes.md").write_text("# notes")
    (tmp_path / "repo" / "README.md").write_text("# readme")
    (tmp_path / "repo" / "src" / "deep" / "x.md").write_text("too deep for a document")
    settings.HARNESS_TARGET_ROOTS = [tmp_path]
    labels = [label for _, label in available_targets()]
    root = tmp_path.name
    assert labels == sorted(
        [
            f"{root}/",
            f"{root}/notes.md",
            f"{root}/repo/",
            f"{root}/repo/README.md",
            f"{root}/repo/src/",
        ]
    )
    assert all(path.startswith(str(tmp_path)) for path, _ in available_targets())


def test_operator_can_launch_a_single_document_review(operator_client: Client) -> None:
    policy = str((settings.BASE_DIR / "samples" / "policy.md").resolve())
    response = operator_client.post(
        reverse("runs:launch"),
        form_data(playbook="multi-perspective-review", target=policy, aggregation=["dedup"]),
    )
    assert response.status_code == 302
    assert Run.objects.get().playbook == "multi-perspective-review"


def test_a_file_name_that_is_not_utf8_in_a_target_root_does_not_break_the_form(
    operator_client: Client, tmp_path: Path, settings: Any
) -> None:
    (tmp_path / "docs").mkdir()
    with open(os.fsencode(tmp_path / "docs") + b"/r\xe9sum\xe9.md", "wb") as fh:
        fh.write(b"# cv\n")
    (tmp_path / "docs" / "plain.md").write_text("# plain\n")
    settings.HARNESS_TARGET_ROOTS = [tmp_path]
    page = operator_client.get(reverse("runs:launch"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "plain.md" in html and "r\\xe9sum" not in html and "\\udce9" not in html


def test_the_form_never_shows_a_server_path(operator_client: Client) -> None:
    """Targets are offered and sent by their name under the allowed root, never by the server's
    absolute path (which says where the product is installed)."""
    html = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'value="samples/vulnerable_app/"' in html
    assert str(settings.BASE_DIR.resolve()) not in html


def test_a_target_is_launched_by_its_name(operator_client: Client) -> None:
    response = operator_client.post(
        reverse("runs:launch"), form_data(target="samples/vulnerable_app/")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    run = Run.objects.get()
    assert run.target_label == "samples/vulnerable_app"


def test_an_unlisted_name_is_refused_like_an_unlisted_path(operator_client: Client) -> None:
    for target in ("samples/../../etc/", "/etc"):
        response = operator_client.post(reverse("runs:launch"), form_data(target=target))
        assert response.status_code == 400
        assert "is not one of the available choices" in response.content.decode()
    assert nothing_created()
