"""The launch form's estimate: the agents a launch would plan, the cost, the refusals; for
operators only, never an error page, and nothing written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from agents.estimate import TIMES
from agents.snapshot import snapshot_store
from runs.actions import launch_run
from runs.actions.planning import plan_run
from runs.models import Run, Task
from tests.runs.test_launch import SAMPLE, nothing_created

pytestmark = pytest.mark.django_db

CORPUS = str((settings.BASE_DIR / "samples" / "corpus").resolve())
URL = reverse("runs:estimate")


def estimate(client: Client, htmx: bool = True, **params: Any) -> Any:
    params.setdefault("provider", "heuristic")
    headers = {"HX-Request": "true"} if htmx else {}
    return client.get(URL, {k: v for k, v in params.items() if v is not None}, headers=headers)


def agents_of(html: str) -> int:
    match = re.search(r'data-agents="(\d+)"', html)
    assert match, html
    return int(match.group(1))


@pytest.mark.parametrize(
    ("playbook", "target", "options"),
    [
        ("codebase-audit", SAMPLE, {}),
        ("codebase-audit", SAMPLE, {"chunk_files": 1}),
        ("ensemble", SAMPLE, {"k": 3}),
        ("document-synthesis", CORPUS, {}),
        ("multi-perspective-review", CORPUS, {}),
        ("multi-perspective-review", CORPUS, {"document": "*"}),
    ],
)
def test_the_estimated_agents_are_the_tasks_a_real_launch_plans(
    operator_client: Client, playbook: str, target: str, options: dict[str, Any]
) -> None:
    response = estimate(operator_client, playbook=playbook, target=target, **options)
    assert response.status_code == 200
    expected = agents_of(response.content.decode())
    run = launch_run(user=None, playbook=playbook, target_path=target, options=options or None)
    plan_run(run.pk)
    assert Task.objects.filter(run=run).count() == expected


def test_the_estimate_writes_nothing(operator_client: Client) -> None:
    store = snapshot_store()
    before = sorted(store.rglob("*")) if store.exists() else []
    assert estimate(operator_client, playbook="codebase-audit", target=SAMPLE).status_code == 200
    assert nothing_created()
    assert (sorted(store.rglob("*")) if store.exists() else []) == before


def test_the_estimate_shows_agents_breakdown_and_cost(operator_client: Client) -> None:
    html = estimate(operator_client, playbook="codebase-audit", target=SAMPLE).content.decode()
    assert f"9 agents</b> (3 lenses {TIMES} 3 chunks)" in html
    # The offline analyzer spends nothing real, and says what it bills against the budget.
    assert "<b>$0</b>" in html and "nominal $" in html
    assert "bytes ÷ 4" in html and "Nothing the launch would refuse." in html


def test_the_estimate_prices_a_model_provider(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    html = estimate(
        operator_client, playbook="codebase-audit", target=SAMPLE, provider="openai"
    ).content.decode()
    assert re.search(r"Estimated cost:\s*<b>\$0\.\d{4}\W\$0\.\d{4}</b>", html), html
    assert "would be refused" not in html
    # With a model, the report's synthesis and critic agents are priced too (one each).
    for role in ("synthesizer", "critic"):
        assert re.search(rf"<td>{role}</td><td class=\"mono\">openai · [^<]+</td><td>1</td>", html)


def test_the_estimate_shows_the_too_many_agents_refusal_and_how_far_max_agents_goes(
    operator_client: Client,
) -> None:
    html = estimate(
        operator_client, playbook="codebase-audit", target=SAMPLE, max_agents=4
    ).content.decode()
    assert agents_of(html) == 9
    assert "needs 9 agents but the run allows 4" in html
    assert f"at most {settings.HARNESS_MAX_AGENTS}, HARNESS_MAX_AGENTS" in html
    assert "Setting max agents to 9" in html


def test_the_estimate_says_when_even_the_highest_max_agents_is_too_few(
    operator_client: Client, settings: Any
) -> None:
    settings.HARNESS_MAX_AGENTS = 5
    html = estimate(
        operator_client, playbook="codebase-audit", target=SAMPLE, max_agents=5
    ).content.decode()
    assert "needs 9 agents but the run allows 5" in html
    assert "Even the highest max agents here (5) is too few" in html


def test_the_estimate_shows_the_no_code_refusal(
    operator_client: Client, settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "notes.md").write_text("# Notes\nNo code here.\n")
    (tmp_path / "minutes.txt").write_text("Minutes of the meeting.\n")
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    target = str(tmp_path.resolve())
    html = estimate(operator_client, playbook="codebase-audit", target=target).content.decode()
    assert "would be refused" in html
    assert "reads source code and configuration, and this target has none" in html
    assert "data-agents" not in html


def test_the_estimate_names_the_variable_of_an_unconfigured_provider(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    html = estimate(
        operator_client, playbook="codebase-audit", target=SAMPLE, provider="anthropic"
    ).content.decode()
    assert "would be refused" in html and "ANTHROPIC_API_KEY" in html


def test_the_estimate_says_which_document_is_reviewed_and_offers_the_others(
    operator_client: Client,
) -> None:
    html = estimate(
        operator_client, playbook="multi-perspective-review", target=CORPUS
    ).content.decode()
    assert "the largest of 6 documents" in html
    # The document select comes back out of band, filled with the target's documents.
    select = html.split('id="launch-document"', 1)[1]
    assert 'hx-swap-oob="true"' in select[:200]
    assert '<option value="customer-faq.md">' in select and '<option value="*">' in select


def test_the_fan_out_option_plans_every_document_times_every_persona(
    operator_client: Client,
) -> None:
    html = estimate(
        operator_client, playbook="multi-perspective-review", target=CORPUS, document="*"
    ).content.decode()
    assert agents_of(html) == 36
    assert f"(6 personas {TIMES} 6 documents)" in html
    assert "Reviews every one of the 6 documents" in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"playbook": "no-such-playbook", "target": SAMPLE}, "no-such-playbook is not one of"),
        ({"playbook": "codebase-audit", "target": "/etc"}, "/etc is not one of"),
        ({"playbook": "codebase-audit", "target": SAMPLE, "max_agents": "lots"}, "whole number"),
        ({"playbook": "ensemble", "target": SAMPLE, "k": "1e999"}, "whole number"),
        ({"playbook": "ensemble", "target": SAMPLE, "k": "-3"}, "between 1 and 50"),
        ({"playbook": "codebase-audit", "target": SAMPLE, "chunk_files": "∞"}, "whole number"),
        ({"playbook": "codebase-audit"}, "Choose a listed target"),
        ({}, "This field is required"),
        ({"playbook": "multi-perspective-review", "target": CORPUS, "document": "x" * 600}, "at"),
        ({"playbook": "codebase-audit", "target": SAMPLE, "provider": "nope"}, "nope is not one"),
    ],
)
def test_bad_input_gives_a_clear_message_never_an_error_page(
    operator_client: Client, params: dict[str, Any], message: str
) -> None:
    response = estimate(operator_client, **params)
    assert response.status_code == 200  # htmx swaps only successful answers
    assert message in response.content.decode()
    page = estimate(operator_client, htmx=False, **params)
    assert page.status_code == 400
    assert message in page.content.decode()
    assert nothing_created()


def test_without_js_the_estimate_is_the_launch_page_with_the_form_kept(
    operator_client: Client,
) -> None:
    response = estimate(operator_client, htmx=False, playbook="ensemble", target=SAMPLE, k=3)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Launch a run</h1>" in html and 'id="launch-estimate"' in html
    assert agents_of(html) == 3
    assert 'name="k" value="3"' in html
    # The form still launches (it does not post to the estimate).
    assert f'action="{reverse("runs:launch")}"' in html


def test_the_estimate_is_for_operators_only(
    client: Client, viewer_client: Client, reviewer_client: Client
) -> None:
    params = {"playbook": "codebase-audit", "target": SAMPLE}
    for other in (viewer_client, reviewer_client):
        assert estimate(other, playbook="codebase-audit", target=SAMPLE).status_code == 403
    response = client.get(URL, params)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Run.objects.exists()
