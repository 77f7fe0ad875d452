"""POST /api/v1/runs/ is the launch form's launch: the same action, the same bounds, the same
refusal messages (compared with the form's own page over HTTP), nothing written on refusal."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from typing import Any

import pytest

from runs.models import Event, Run, Task
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db(transaction=True)


def _zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


APP_ZIP = {"app/db.py": "def find(c, name):\n    c.execute('SELECT * FROM u WHERE n=' + name)\n"}


def _rows() -> tuple[int, int, int]:
    return Run.objects.count(), Task.objects.count(), Event.objects.count()


def _form_errors(page: str) -> list[str]:
    """Every error message the launch page shows (field lists and the form's own)."""
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
    found += re.findall(r'<div class="msg msg-error" role="alert">(.*?)</div>', page, re.S)
    items = [li for block in found for li in re.findall(r"<li>(.*?)</li>", block, re.S)]
    items += [block for block in found if "<li>" not in block]
    return [html.unescape(re.sub(r"<[^>]+>", "", text)).strip() for text in items]


@pytest.fixture
def operator_token(operator: Any, token_for) -> str:
    return token_for(operator, "launch", "read")


def test_launch_with_json_names_a_listed_target(api: Any, operator: Any, operator_token) -> None:
    response = api.post(
        "/api/v1/runs/",
        token=operator_token,
        json={
            "playbook": "codebase-audit",
            "target": "samples/vulnerable_app/",
            "title": "nightly",
            "max_concurrency": 2,
            "budget_usd": "0.5",
            "options": {"chunk_files": 3, "exclude": ["*.md"]},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert response.headers["location"] == f"/api/v1/runs/{run.pk}/"
    assert (run.launched_by, run.title, run.max_concurrency) == (operator, "nightly", 2)
    assert str(run.budget_usd) == "0.500000"
    assert run.config["options"]["chunk_files"] == 3
    assert run.config["options"]["exclude"] == ["*.md"]
    assert body["status"] == "pending" and body["target"] == run.target_label
    assert body["limits"]["max_concurrency"] == 2


def test_launch_with_an_uploaded_archive(api: Any, operator_token) -> None:
    response = api.post(
        "/api/v1/runs/",
        token=operator_token,
        files={"archive": ("repo.zip", _zip(APP_ZIP), "application/zip")},
        data={"launch": json.dumps({"playbook": "codebase-audit", "title": "PR 12"})},
    )
    assert response.status_code == 201, response.text
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.target_kind, run.target_label, run.title) == ("archive", "repo.zip", "PR 12")
    assert run.snapshot_info["files"] == 1


@pytest.mark.parametrize(
    ("form", "launch", "field"),
    [
        # An option out of its bounds (checked by the same check_options).
        (
            {"playbook": "ensemble", "k": "999"},
            {"playbook": "ensemble", "options": {"k": 999}},
            "k",
        ),
        # A target that needs more agents than allowed (the planner's refusal).
        (
            {"playbook": "codebase-audit", "max_agents": "1"},
            {"playbook": "codebase-audit", "options": {"max_agents": 1}},
            "target",
        ),
        # A provider whose API key is not set here.
        (
            {"playbook": "codebase-audit", "provider": "openai"},
            {"playbook": "codebase-audit", "provider": "openai"},
            "provider",
        ),
        # An exclude glob that is not one.
        (
            {"playbook": "codebase-audit", "exclude": "x" * 600},
            {"playbook": "codebase-audit", "options": {"exclude": ["x" * 600]}},
            "exclude",
        ),
    ],
)
def test_refusals_are_the_forms_own_words(
    api: Any, operator: Any, operator_token, monkeypatch, form, launch, field
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    target = "samples/vulnerable_app/"
    fields = {
        "provider": "heuristic",
        "max_concurrency": "4",
        "max_depth": "3",
        "budget_usd": "5",
        "latency_ms": "0",
        "target": target,
        **form,
    }
    before = _rows()
    page = api.post("/runs/new/", session=operator, data=fields)
    assert page.status_code == 400, page.text[:300]
    shown = _form_errors(page.text)
    response = api.post("/api/v1/runs/", token=operator_token, json={"target": target, **launch})
    body = assert_problem(response, 422, "launch-refused")
    assert body["detail"] in shown, (body["detail"], shown)
    assert body["field"] == field
    assert _rows() == before


def test_a_broken_archive_is_refused_like_the_form_refuses_it(
    api: Any, operator: Any, operator_token
) -> None:
    junk = ("repo.zip", b"this is no zip file", "application/zip")
    before = _rows()
    page = api.post(
        "/runs/new/",
        session=operator,
        data={
            "playbook": "codebase-audit",
            "provider": "heuristic",
            "max_concurrency": "4",
            "max_depth": "3",
            "latency_ms": "0",
        },
        files={"archive": junk},
    )
    assert page.status_code == 400, (page.status_code, page.headers.get("location"))
    response = api.post(
        "/api/v1/runs/",
        token=operator_token,
        files={"archive": junk},
        data={"launch": json.dumps({"playbook": "codebase-audit"})},
    )
    body = assert_problem(response, 422, "launch-refused")
    assert body["field"] == "archive"
    assert body["detail"] in _form_errors(page.text)
    assert _rows() == before


def test_a_target_outside_the_roots_is_refused(api: Any, operator_token) -> None:
    response = api.post(
        "/api/v1/runs/", token=operator_token, json={"playbook": "codebase-audit", "target": "/etc"}
    )
    body = assert_problem(response, 422, "launch-refused")
    assert body["field"] == "target"
    assert not Run.objects.exists()


def test_both_a_target_and_an_archive_or_neither_is_refused(api: Any, operator_token) -> None:
    response = api.post("/api/v1/runs/", token=operator_token, json={"playbook": "codebase-audit"})
    body = assert_problem(response, 422, "launch-refused")
    assert body["detail"] == "Choose a target directory or upload an archive (one of the two)."
    response = api.post(
        "/api/v1/runs/",
        token=operator_token,
        files={"archive": ("repo.zip", _zip(APP_ZIP), "application/zip")},
        data={"launch": json.dumps({"playbook": "codebase-audit", "target": "samples/"})},
    )
    assert_problem(response, 422, "launch-refused")
    assert not Run.objects.exists()


def test_malformed_launches_are_422_problems_naming_the_input(api: Any, operator_token) -> None:
    cases = [
        ({"target": "samples/"}, "playbook"),  # missing
        ({"playbook": "codebase-audit", "target": "samples/", "max_depth": "deep"}, "max_depth"),
        ({"playbook": "codebase-audit", "target": "samples/", "colour": "red"}, "colour"),
    ]
    for launch, name in cases:
        response = api.post("/api/v1/runs/", token=operator_token, json=launch)
        body = assert_problem(response, 422, "invalid-request")
        assert body["detail"].startswith(name), body
        assert body["errors"][0]["loc"] == ["body", name]
    response = api.post(
        "/api/v1/runs/",
        token=operator_token,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 422, "invalid-request")
    response = api.post(
        "/api/v1/runs/", token=operator_token, content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported-media-type")
    assert not Run.objects.exists()


def test_an_unknown_playbook_option_is_refused_naming_the_options(api: Any, operator_token):
    response = api.post(
        "/api/v1/runs/",
        token=operator_token,
        json={"playbook": "codebase-audit", "target": "samples/", "options": {"k": 3}},
    )
    body = assert_problem(response, 422, "launch-refused")
    assert body["field"] == "options"
    # The ensemble's option, named, and the audit's own listed (adaptive is one of them now).
    assert body["detail"].startswith("Unknown option 'k' for codebase-audit. Its options:")
    assert "adaptive" in body["detail"] and "budget_split" in body["detail"]
