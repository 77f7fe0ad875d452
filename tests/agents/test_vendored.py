"""Vendored front-end libraries recognised by file name, banner and minification — not only by
path — and skipped by the offline analyzer with the reason, while the project's own JS is
analysed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.analysis import vendored_reason
from agents.contract import AgentRequest
from agents.providers.heuristic import HeuristicProvider
from agents.snapshot import Snapshot, freeze_directory

JQUERY_HEAD = (
    "/*! jQuery v3.6.0 | (c) OpenJS Foundation and other contributors | jquery.org/license */\n"
)
OWN_JS = "function show(x) {\n  // the page's own code\n  eval(x);\n}\n"
MINIFIED = "!function(e){" + "var a=e.b,c=e.d;eval(a);" * 150 + "}(window);\n"


@pytest.mark.parametrize(
    "path",
    [
        "static/js/jquery-3.6.0.js",
        "js/jquery.js",
        "assets/bootstrap.bundle.js",
        "css/bootstrap-4.1.3.css",
        "js/angular.js",
        "js/react-dom.production.js",
        "js/lodash.js",
        "js/moment-with-locales.js",
        "js/d3.v5.js",
        "js/popper.js",
        "js/select2.full.js",
        "js/Chart.bundle.js",
        "js/codemirror.js",
    ],
)
def test_well_known_library_names_are_vendored(path: str) -> None:
    assert vendored_reason(path) == "well-known third-party library (by file name)"


@pytest.mark.parametrize("path", ["js/charts.js", "js/required.js", "js/jquery_setup.py"])
def test_lookalike_names_are_own_code(path: str) -> None:
    assert vendored_reason(path) is None


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (JQUERY_HEAD, "jQuery banner"),
        ("/*!\n * Bootstrap v4.6.2 (https://getbootstrap.com/)\n */\n", "Bootstrap banner"),
        ("/**\n * @license\n * Lodash <https://lodash.com/>\n */\n", "@license banner"),
        ("/* Widget 1.2 (c) 2020 Someone | MIT License */\n", "MIT License banner"),
        ("/*! widget v2 | (c) Someone */\n", "library banner"),
    ],
)
def test_banner_in_the_head_marks_a_renamed_copy(head: str, reason: str) -> None:
    assert vendored_reason("static/js/app-lib.js", head + OWN_JS) == reason
    # The same banner past the first 2 KB is not a library's header.
    assert vendored_reason("static/js/app-lib.js", OWN_JS * 200 + head) is None


def test_minified_content_is_vendored() -> None:
    reason = vendored_reason("static/js/widgets.js", MINIFIED)
    assert reason and reason.startswith("minified code (longest line")
    # Long lines in a Python file are the project's own, however unusual.
    assert vendored_reason("app/data.py", MINIFIED) is None


def test_own_js_is_not_vendored() -> None:
    assert vendored_reason("static/js/app.js", OWN_JS) is None
    assert vendored_reason("static/js/app.js") is None


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    root = tmp_path / "t"
    (root / "static" / "js").mkdir(parents=True)
    (root / "static" / "js" / "app-lib.js").write_text(JQUERY_HEAD + OWN_JS)
    (root / "static" / "js" / "widgets.js").write_text(MINIFIED)
    (root / "static" / "js" / "jquery-3.6.0.js").write_text(OWN_JS)
    (root / "static" / "js" / "app.js").write_text(OWN_JS)
    manifest = freeze_directory(root, [root], tmp_path / "store")
    return Snapshot.open(tmp_path / "store", manifest.key)


def test_agent_skips_vendored_by_content_and_analyses_own_js(snapshot: Snapshot) -> None:
    files = [
        "static/js/app-lib.js",
        "static/js/widgets.js",
        "static/js/jquery-3.6.0.js",
        "static/js/app.js",
    ]
    request = AgentRequest(
        run_id=1,
        task_id=1,
        task_key="k",
        step="analyze",
        lens="security",
        scope={"files": files},
        model="heuristic-v1",
        snapshot=snapshot,
        max_tokens=4096,
    )
    out = HeuristicProvider().run_agent(request).output
    assert {(f.path, f.line_start) for f in out.findings} == {("static/js/app.js", 3)}
    reasons = {s["path"]: s["reason"] for s in out.data["skipped"]}
    assert reasons["static/js/app-lib.js"] == "jQuery banner"
    assert reasons["static/js/widgets.js"].startswith("minified code")
    assert reasons["static/js/jquery-3.6.0.js"] == "well-known third-party library (by file name)"
    assert "static/js/app.js" not in reasons
    assert "3 third-party files skipped" in out.summary
