"""The launch form's estimate: the agents a launch would plan, the cost, the refusals; for
operators only, never an error page, and nothing written."""

from __future__ import annotations

import re
from decimal import Decimal
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
    """The estimate as the page asks for it: a POST of the form (htmx, or the Estimate button
    without JS), never a GET that would put the form's CSRF token in a URL."""
    params.setdefault("provider", "heuristic")
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(URL, {k: v for k, v in params.items() if v is not None}, headers=headers)


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
    response = client.post(URL, params)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Run.objects.exists()


def test_without_js_the_estimate_button_posts_the_form(operator_client: Client) -> None:
    html = operator_client.get(reverse("runs:launch")).content.decode()
    button = html.split('class="estimate-again"', 1)[1].split("</button>", 1)[0]
    assert f'formaction="{URL}"' in button and 'formmethod="post"' in button
    assert "hx-post=" in button and "hx-get=" not in button
    panel = html.split('id="launch-estimate"', 1)[1].split(">", 1)[0]
    assert f'hx-post="{URL}"' in panel and "hx-get" not in panel
    # A GET (an old link or bookmark) shows the launch page; it never estimates from a URL.
    response = operator_client.get(URL, {"playbook": "codebase-audit", "target": SAMPLE})
    assert response.status_code == 302 and response["Location"] == reverse("runs:launch")


def _money(html: str, label: str) -> str:
    match = re.search(label, html)
    assert match, html
    return match.group(1)


@pytest.mark.parametrize("htmx", [True, False])
def test_an_estimate_above_the_budget_says_by_how_much_and_offers_a_budget_that_covers_it(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch, htmx: bool
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    params = {"playbook": "codebase-audit", "target": SAMPLE, "provider": "openai"}
    html = estimate(operator_client, htmx=htmx, **params, budget_usd="0.001").content.decode()
    high = Decimal(_money(html, r"<b>\$0\.\d{4}\W\$(0\.\d{4})</b>"))
    assert high > Decimal("0.001")
    assert "Nothing the launch would refuse" not in html
    over = Decimal(_money(html, r"data-over-budget=\"([\d.]+)\""))
    assert abs(over - (high - Decimal("0.001"))) < Decimal("0.0001")
    assert f"${over:.4f} above the budget of $0.0010" in html
    # The budget offered covers the upper end (to the cent above it) and fills the field.
    cover = Decimal(_money(html, r'name="use_budget_usd" value="([\d.]+)"'))
    assert high <= cover < high + Decimal("0.01") and cover == cover.quantize(Decimal("0.01"))
    assert f'data-fill-budget="{cover}"' in html
    assert f"A budget of ${cover} covers" in html

    # Without JS the button posts the form with that budget: the page comes back with it.
    page = estimate(
        operator_client, htmx=False, **params, budget_usd="0.001", use_budget_usd=str(cover)
    ).content.decode()
    assert f'name="budget_usd" value="{cover}"' in page
    assert "data-over-budget" not in page and "Nothing the launch would refuse." in page


def test_the_offline_analyzers_nominal_bill_is_checked_against_the_budget_too(
    operator_client: Client,
) -> None:
    params: dict[str, Any] = {"playbook": "codebase-audit", "target": SAMPLE}
    html = estimate(operator_client, **params, budget_usd="0.000001").content.decode()
    assert "data-over-budget" in html and "Nothing the launch would refuse" not in html
    assert "above the budget of $0.000001." in html  # a micro-dollar budget is not "$0.0000"
    html = estimate(operator_client, **params, budget_usd="5").content.decode()
    assert "data-over-budget" not in html and "Nothing the launch would refuse." in html
    # No USD ceiling at all: nothing to be over.
    html = estimate(operator_client, **params, budget_usd="").content.decode()
    assert "data-over-budget" not in html
