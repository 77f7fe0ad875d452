"""The security lens on real analyzers: bandit merged with our rules, framework checks,
suppression markers, vendored files, ranking and the output cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.aggregation.records import FindingRow
from agents.aggregation.stages import RunFacts, run_chain
from agents.analysis import analyze_code, analyze_file, vendored_reason
from agents.analysis.ranking import rank_key
from agents.contract import AgentFinding, AgentOutput, AgentRequest
from agents.providers.heuristic import OUTPUT_CAP_RULE, HeuristicProvider, _fit_output
from agents.snapshot import Snapshot, freeze_directory

FLASK = "from flask import Flask, request, redirect, send_file, render_template_string\n"
DJANGO = (
    "from django.http import HttpResponseRedirect\n"
    "from django.utils.safestring import mark_safe\n"
    "from django.views.decorators.csrf import csrf_exempt\n"
)


def sec(code: str, path: str = "m.py") -> set[tuple[int, str]]:
    return {(f.line_start, f.rule) for f in analyze_code(path, code, "security")}


# --- bandit inside the security lens -------------------------------------------------------


def test_bandit_issue_keeps_its_origin_cwe_and_mapped_severity() -> None:
    [f] = analyze_code("m.py", "import tempfile\nf = tempfile.mktemp()\n", "security")
    assert f.rule == "bandit.B306" and f.origin == "bandit B306"
    assert "bandit B306" in f.title and "CWE-377" in f.detail and f.cwe == 377
    assert f.severity == "medium" and f.line_start == 2


def test_bandit_and_our_rule_on_the_same_weakness_give_one_finding() -> None:
    code = "def q(cur, name):\n    cur.execute(f\"SELECT * FROM t WHERE n = '{name}'\")\n"
    [f] = analyze_code("m.py", code, "security")
    assert f.rule == "sec.sql" and f.cwe == 89
    assert "Also reported by bandit B608." in f.detail


def test_sql_built_on_an_earlier_line_is_still_one_finding() -> None:
    code = 'def q(cur, o):\n    s = "SELECT 1 FROM t WHERE o = \'" + o + "\'"\n    cur.execute(s)\n'
    assert sec(code) == {(3, "sec.sql")}


def test_noisy_bandit_checks_are_left_out() -> None:
    code = (
        "import subprocess, pickle, random\nassert x\n"
        "subprocess.run(['ls', '-l'])\npassword = 'changeme'\nrandom.choice([1, 2])\n"
    )
    assert sec(code) == set()


# --- shell false positive --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["False", "0", "None", "[]", "()", "''", "{}"])
def test_falsy_shell_literal_is_not_a_shell(value: str) -> None:
    assert sec(f"import subprocess\nsubprocess.run(cmd, shell={value})\n") == set()


def test_truthy_or_unknown_shell_is_flagged() -> None:
    code = "import subprocess\nsubprocess.run(c, shell=1)\nsubprocess.run(c, shell=flag)\n"
    assert {r for _, r in sec(code)} == {"sec.shell"}
    assert {line for line, _ in sec(code)} == {2, 3}


# --- suppression markers ---------------------------------------------------------------------


def test_nosec_and_noqa_move_findings_to_suppressed_not_away() -> None:
    code = (
        "import yaml\n"
        "a = yaml.load(s)  # nosec\n"
        "b = yaml.load(s)  # nosec B506\n"
        "c = yaml.load(s)  # noqa: S506\n"
        "d = yaml.load(s)  # nosec B608\n"
        "e = yaml.load(s)  # noqa: E501\n"
        "f = yaml.load(s)  # noqa\n"
        "g = '# nosec'; h = yaml.load(s)\n"
    )
    result = analyze_file("m.py", code, "security")
    assert {f.line_start for f in result.findings} == {5, 6, 8}
    assert {s.finding.line_start: s.marker for s in result.suppressed} == {
        2: "# nosec",
        3: "# nosec B506",
        4: "# noqa: S506",
        7: "# noqa",
    }
    assert result.suppressed[0].to_dict()["rule"] == "sec.deserialize"


def test_markers_do_not_hide_reliability_findings() -> None:
    code = "try:\n    a()\nexcept:  # nosec\n    pass\n"
    assert {f.rule for f in analyze_code("m.py", code, "reliability")} == {"rel.bare_except"}


# --- framework checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("    return send_file(request.args['f'])\n", "sec.path_traversal"),
        ("    p = request.args['f']\n    return open('/srv/' + p).read()\n", "sec.path_traversal"),
        (
            "    import requests\n    return requests.get(request.json['u'], timeout=3)\n",
            "sec.ssrf",
        ),
        ("    return redirect(request.args.get('next'))\n", "sec.open_redirect"),
        ("    t = request.form['t']\n    return render_template_string(t)\n", "sec.ssti"),
        # Through the same text and URL calls the flow rules follow (split, urlparse, b64decode).
        (
            "    to = request.args.get('next', '/').split('#')[0]\n    return redirect(to)\n",
            "sec.open_redirect",
        ),
        (
            "    from urllib.parse import urlparse\n"
            "    return redirect(urlparse(request.args['next']).path)\n",
            "sec.open_redirect",
        ),
        (
            "    import base64\n"
            "    t = base64.b64decode(request.form['t']).decode()\n"
            "    return render_template_string(t)\n",
            "sec.ssti",
        ),
    ],
)
def test_request_data_reaching_a_sink_is_reported(body: str, rule: str) -> None:
    code = FLASK + "def view():\n" + body
    assert rule in {r for _, r in sec(code)}


@pytest.mark.parametrize(
    "body",
    [
        "    from werkzeug.utils import secure_filename\n"
        "    return send_file(secure_filename(request.args['f']))\n",
        "    return send_file('/srv/report.pdf')\n",
        "    return redirect(url_for('home'))\n",
        "    return render_template_string('<p>{{ n }}</p>', n=request.args['n'])\n",
        "    name = 'x'\n    return open(name).read()\n",
        "    form = Form(request.POST)\n    run = save(form)\n    return redirect(run)\n",
    ],
)
def test_sinks_without_request_data_are_quiet(body: str) -> None:
    code = FLASK + "from flask import url_for\ndef view():\n" + body
    assert not {r for _, r in sec(code)} & {
        "sec.path_traversal",
        "sec.ssrf",
        "sec.open_redirect",
        "sec.ssti",
    }


def test_django_csrf_exempt_mark_safe_and_redirect() -> None:
    code = DJANGO + (
        "@csrf_exempt\ndef hook(request):\n    return HttpResponseRedirect(request.GET['to'])\n"
        "def hi(request):\n    return mark_safe('<b>' + request.user.name + '</b>')\n"
        "def ok(request):\n    return mark_safe('<b>fixed</b>')\n"
    )
    assert {(line, r) for line, r in sec(code) if r.startswith("sec.")} == {
        (4, "sec.csrf"),
        (6, "sec.open_redirect"),
        (8, "sec.xss"),
    }


def test_flask_config_secret_debug_and_csrf_off() -> None:
    code = (
        "app.config['SECRET_KEY'] = 'a8f5f167f44f4964'\n"
        "app.config['SECRET_KEY'] = 'changeme'\n"
        "app.config['DEBUG'] = True\n"
        "app.config['WTF_CSRF_ENABLED'] = False\n"
        "app.config['SESSION_COOKIE_NAME'] = 'shop'\n"
    )
    # A weak default as the signing key is a finding too: anyone can forge sessions with it.
    assert sec(code) == {(1, "sec.secret"), (2, "sec.secret"), (3, "sec.debug"), (4, "sec.csrf")}
    secret, _ = [f for f in analyze_code("m.py", code, "security") if f.rule == "sec.secret"]
    assert "a8f5f167" not in secret.evidence  # masked


def test_weak_randomness_only_where_it_makes_a_secret() -> None:
    code = (
        "import random\n"
        "otp = random.randint(100000, 999999)\n"
        "def make_password():\n    return ''.join(random.choice(abc) for _ in range(9))\n"
        "colour = random.choice(colours)\n"
        "page = 'Set-Cookie: SESSIONID=%s' % ''.join(random.sample(chars, 20))\n"
        "self.session_key = random.getrandbits(64)\n"
        "print('a random sample: %s' % random.sample(items, 2))\n"
    )
    assert sec(code) == {
        (2, "sec.weak_random"),
        (4, "sec.weak_random"),
        (6, "sec.weak_random"),
        (7, "sec.weak_random"),
    }


def test_templates_safe_filter_and_autoescape_off() -> None:
    html = (
        "{# {{ old|safe }} #}\n<!-- {{ x|safe }} -->\n<p>{{ bio|safe }}</p>\n"
        "{% autoescape off %}{{ a }}{% endautoescape %}\n{% autoescape true %}\n"
        "<p>{{ price|floatformat:2 }}</p><p>{{ safe_name }}</p>\n"
    )
    for path in ("t.html", "t.jinja", "t.j2"):
        assert sec(html, path) == {(3, "sec.xss"), (4, "sec.xss")}
    assert analyze_code("t.html", html, "reliability") == []


# --- vendored files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["web/jquery.min.js", "node_modules/x/i.js", "vendor/lib.py", "static/js/lib/chart.js"],
)
def test_vendored_paths_have_a_reason(path: str) -> None:
    assert vendored_reason(path)


@pytest.mark.parametrize("path", ["app/views.py", "static/js/app.js", "docs/vendors.md"])
def test_own_code_is_not_vendored(path: str) -> None:
    assert vendored_reason(path) is None


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    root = tmp_path / "t"
    (root / "static" / "lib").mkdir(parents=True)
    (root / "static" / "lib" / "x.js").write_text("eval(location.hash)\n")
    (root / "app.min.js").write_text("eval(a)\n")
    (root / "a.py").write_text("import yaml\nyaml.load(s)\nyaml.load(t)  # nosec\n")
    manifest = freeze_directory(root, [root], tmp_path / "store")
    return Snapshot.open(tmp_path / "store", manifest.key)


def _request(snapshot: Snapshot, files: list[str], max_tokens: int = 2048) -> AgentRequest:
    return AgentRequest(
        run_id=1,
        task_id=1,
        task_key="k",
        step="analyze",
        lens="security",
        scope={"files": files},
        model="heuristic-v1",
        snapshot=snapshot,
        max_tokens=max_tokens,
    )


def test_agent_lists_skipped_vendored_files_and_suppressed_findings(snapshot: Snapshot) -> None:
    files = ["a.py", "app.min.js", "static/lib/x.js"]
    out = HeuristicProvider().run_agent(_request(snapshot, files)).output
    assert [(f.path, f.line_start) for f in out.findings] == [("a.py", 2)]
    assert {s["path"] for s in out.data["skipped"]} == {"app.min.js", "static/lib/x.js"}
    assert out.data["suppressed"][0] | {"line": 3, "marker": "# nosec"} == out.data["suppressed"][0]
    assert "2 third-party files skipped" in out.summary and "1 suppressed" in out.summary


# --- ranking and the output cap ------------------------------------------------------------


def test_security_by_severity_and_cwe_above_reliability() -> None:
    injection = rank_key("security", "high", 89, 0.5)
    weak_hash = rank_key("security", "medium", 328, 0.9)
    bare_except = rank_key("reliability", "medium", 396, 1.0)
    deserialize = rank_key("security", "high", 502, 0.5)
    debug_high = rank_key("security", "high", 489, 0.9)
    assert injection < deserialize < debug_high < weak_hash < bare_except


def _finding(n: int, severity: str = "low", cwe: int | None = None) -> AgentFinding:
    return AgentFinding(
        title=f"finding {n}",
        detail="x" * 300,
        severity=severity,  # type: ignore[arg-type]
        confidence=0.5,
        path=f"f{n % 3}.py",
        line_start=n,
        rule="sec.x",
        cwe=cwe,
    )


def test_output_cap_drops_least_urgent_and_says_what_and_where() -> None:
    findings = [_finding(n) for n in range(1, 40)] + [_finding(99, "high", 89)]
    output = AgentOutput(summary="s", findings=findings)
    trimmed, tokens = _fit_output(output, 2048)
    assert tokens <= 2048
    note = trimmed.findings[-1]
    kept = trimmed.findings[:-1]
    assert note.rule == OUTPUT_CAP_RULE and note.severity == "info"
    assert kept[0].line_start == 99  # the injection survives
    dropped = trimmed.data["dropped_findings"]
    assert dropped["count"] == len(findings) - len(kept) > 0
    assert sum(dropped["by_path"].values()) == dropped["count"]
    assert note.title.startswith(f"{dropped['count']} findings dropped")
    assert "f0.py: lines" in note.detail and "dropped: output limit" in trimmed.summary


def test_output_within_cap_is_untouched() -> None:
    output = AgentOutput(summary="s", findings=[_finding(1)])
    assert _fit_output(output, 2048)[0] == output


def _row(i: int, lens: str, rule: str, severity: str, detail: str = "") -> FindingRow:
    return FindingRow(
        id=i,
        task_id=i,
        lens=lens,
        rule=rule,
        title=f"T{i}",
        detail=detail,
        severity=severity,
        confidence=0.9 if lens == "reliability" else 0.4,
        path="a.py",
        line_start=i,
        line_end=i,
        evidence="",
    )


def _facts() -> RunFacts:
    return RunFacts(
        run_id=1,
        playbook="codebase-audit",
        playbook_title="Audit",
        target="t",
        status="aggregating",
        provider="heuristic",
        is_llm=False,
        agents={"total": 1, "succeeded": 1},
        cost_usd="0",
        budget_usd=None,
        unpriced_calls=0,
        tokens={},
        skipped_files=[],
        failed_scopes=[],
        skipped_scopes=[],
        options={},
    )


def test_report_ranks_injection_first_and_critique_shows_dropped_findings() -> None:
    rows = [
        _row(1, "reliability", "rel.bare_except", "medium", "(CWE-396)"),
        _row(2, "security", "sec.weak_hash", "medium", "(CWE-328)"),
        _row(3, "security", "sec.deserialize", "high", "(CWE-502)"),
        _row(4, "security", "sec.sql", "high", "(CWE-89)"),
        _row(5, "security", OUTPUT_CAP_RULE, "info", "Dropped: a.py: lines 7, 9"),
    ]
    rows[4].title = "2 findings dropped at the output limit"
    draft = run_chain(rows, _facts(), ["dedup", "synthesis", "critic"])
    order = [c.rule for c in draft.clusters if c.kept]
    assert OUTPUT_CAP_RULE not in order
    table = draft.markdown.split("## Findings", 1)[1]
    positions = [table.index(t) for t in ("T4", "T3", "T2", "T1")]  # sql, pickle, md5, except
    assert positions == sorted(positions)
    assert any("output limit" in note for note in draft.critique)
    assert draft.stats["dropped_at_output_limit"] == 2


def test_django_middleware_without_csrf() -> None:
    frames = "    'django.middleware.clickjacking.XFrameOptionsMiddleware',\n"
    without = "MIDDLEWARE = [\n    'django.middleware.common.CommonMiddleware',\n" + frames + "]\n"
    with_csrf = (
        "MIDDLEWARE = [\n    'django.middleware.common.CommonMiddleware',\n"
        "    'django.middleware.csrf.CsrfViewMiddleware',\n" + frames + "]\n"
    )
    built = "MIDDLEWARE = [*BASE, 'django.middleware.common.CommonMiddleware']\n"
    assert sec(without, "settings.py") == {(1, "sec.csrf")}
    assert sec(with_csrf, "settings.py") == set() == sec(built, "settings.py")


def test_agent_that_can_spawn_splits_instead_of_dropping(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for n in range(2):
        (root / f"m{n}.py").write_text("".join(f"eval(x{i})\n" for i in range(15)))
    manifest = freeze_directory(root, [root], tmp_path / "store")
    snap = Snapshot.open(tmp_path / "store", manifest.key)
    request = _request(snap, ["m0.py", "m1.py"])
    request.can_spawn = True
    out = HeuristicProvider().run_agent(request).output
    assert out.findings == [] and [s.scope["files"] for s in out.spawn] == [["m0.py"], ["m1.py"]]
    assert "output" in out.spawn[0].why
    request.can_spawn = False  # at the depth limit: it drops, and says so
    out = HeuristicProvider().run_agent(request).output
    assert out.findings[-1].rule == OUTPUT_CAP_RULE and out.data["dropped_findings"]["count"] > 0
