"""Tests for the offline heuristic code analyzer (agents.analysis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.analysis import (
    CODE_LENSES,
    RULES_BY_LENS,
    RawFinding,
    analyze_code,
    analyze_file,
    vendored_reason,
)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "vulnerable_app"


def run(path: str, text: str, lens: str | None = None) -> list[RawFinding]:
    lenses = [lens] if lens else list(CODE_LENSES)
    return [f for one in lenses for f in analyze_code(path, text, one)]


def rules_at(path: str, text: str) -> set[tuple[int, str]]:
    return {(f.line_start, f.rule) for f in run(path, text)}


def rules(path: str, text: str) -> set[str]:
    return {f.rule for f in run(path, text)}


# --- API contract ----------------------------------------------------------------------------


def test_unknown_lens_raises() -> None:
    with pytest.raises(ValueError, match="unknown lens"):
        analyze_code("a.py", "x = 1\n", "style")


def test_finding_shape_and_to_dict() -> None:
    [f] = analyze_code("a.py", "x = 1\ny = eval(input())\n", "security")
    assert (f.rule, f.lens, f.line_start, f.line_end) == ("sec.eval", "security", 2, 2)
    assert f.severity in ("info", "low", "medium", "high", "critical")
    assert 0.0 <= f.confidence <= 1.0 and f.evidence == "y = eval(input())"
    assert f.to_dict()["rule"] == "sec.eval" and set(f.to_dict()) >= {"path", "detail"}
    with pytest.raises(AttributeError):
        f.rule = "x"  # type: ignore[misc]


def test_every_rule_belongs_to_its_lens() -> None:
    sample = (SAMPLE / "app" / "views.py").read_text()
    for lens in CODE_LENSES:
        assert all(
            f.lens == lens
            and (f.rule in RULES_BY_LENS[lens] or (lens, f.rule[:7]) == ("security", "bandit."))
            for f in analyze_code("app/views.py", sample, lens)
        )


# --- security ------------------------------------------------------------------------------


def test_eval_only_real_builtin_calls() -> None:
    code = (
        "import numpy as np\nmodel.eval()\ns = 'eval(x)'\n# eval(x)\n"
        "exec(code)\nresult = eval(user)\n"
    )
    assert rules_at("m.py", code) == {(5, "sec.eval"), (6, "sec.eval")}


def test_eval_shadowed_by_local_def_is_not_flagged() -> None:
    assert "sec.eval" not in rules("m.py", "def eval(x):\n    return x\n\neval(3)\n")


def test_shell_true_flagged_shell_false_fine() -> None:
    code = (
        "import subprocess as sp\nimport os\nsp.run(cmd, shell=True)\n"
        "sp.run(['ls', d], shell=False)\nsp.run(['ls'])\nos.popen(cmd)\n"
    )
    assert rules_at("m.py", code) == {(3, "sec.shell"), (6, "sec.shell")}


def test_sql_formatting_vs_parameters() -> None:
    code = (
        "def f(cur, name):\n"
        "    cur.execute('SELECT * FROM t WHERE n = %s' % name)\n"
        "    cur.execute('SELECT * FROM t WHERE n = %s', (name,))\n"
        "    q = 'SELECT * FROM t WHERE n = ' + name\n"
        "    cur.execute(q)\n"
        "    q2 = 'SELECT 1'\n"
        "    cur.execute(q2)\n"
        "    Item.objects.raw(f'SELECT * FROM item WHERE id = {name}')\n"
    )
    assert {line for line, r in rules_at("m.py", code) if r == "sec.sql"} == {2, 5, 8}


def test_secrets_masked_and_placeholders_ignored() -> None:
    code = (
        'API_KEY = "sk-test-FAKE-not-a-real-key-123"\nDB_PASSWORD = ""\n'
        'TOKEN = "changeme"\nPASSWORD_URL = "https://x.invalid/reset"\n'
        'token_env = "DJANGO_TOKEN"\nmsg = {"password": "Invalid password"}\n'
        'connect(password="FAKE-pw-1234")\n'
    )
    found = [f for f in run("m.py", code, "security") if f.rule == "sec.secret"]
    assert [f.line_start for f in found] == [1, 7]
    assert found[0].evidence == 'API_KEY = "sk****"'
    assert all("FAKE" not in f.evidence for f in found)


def test_aws_key_and_private_key_any_file_type() -> None:
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    text = (
        f"notes\nid: {key}\n-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH"
        " PRIVATE KEY-----\n"
    )
    found = run("notes.txt", text, "security")
    assert [(f.rule, f.line_start, f.line_end) for f in found] == [
        ("sec.aws_key", 2, 2),
        ("sec.private_key", 3, 5),
    ]
    assert key not in found[0].evidence and "abc" not in found[1].evidence


def test_deserialization() -> None:
    code = (
        "import pickle, yaml\npickle.load(f)\nyaml.load(s)\n"
        "yaml.load(s, Loader=yaml.SafeLoader)\nyaml.safe_load(s)\n"
    )
    assert rules_at("m.py", code) == {(2, "sec.deserialize"), (3, "sec.deserialize")}


def test_tls_weak_hash_and_debug() -> None:
    code = (
        "import hashlib, ssl, requests\nrequests.get(u, timeout=3, verify=False)\n"
        "requests.get(u, timeout=3, verify=True)\nctx = ssl._create_unverified_context()\n"
        "hashlib.md5(b'x')\nhashlib.sha1(b'x', usedforsecurity=False)\n"
        "hashlib.new('sha1')\nhashlib.sha256(b'x')\nDEBUG = True\napp.run(debug=True)\n"
        "def f():\n    DEBUG = True\n"
    )
    assert rules_at("m.py", code) == {
        (2, "sec.tls"),
        (4, "sec.tls"),
        (5, "sec.weak_hash"),
        (7, "sec.weak_hash"),
        (9, "sec.debug"),
        (10, "sec.debug"),
    }


# --- reliability ---------------------------------------------------------------------------


def test_except_rules() -> None:
    code = (
        "try:\n    a()\nexcept:\n    pass\n"
        "try:\n    a()\nexcept Exception:\n    pass\n"
        "try:\n    a()\nexcept Exception as e:\n    log(e)\n"
        "try:\n    a()\nexcept ValueError:\n    pass\n"
    )
    assert rules_at("m.py", code) == {(3, "rel.bare_except"), (7, "rel.swallowed_exception")}


def test_timeouts() -> None:
    code = (
        "import requests, httpx\nfrom urllib.request import urlopen\n"
        "requests.get(u)\nrequests.post(u, timeout=5)\nrequests.get(u, **opts)\n"
        "urlopen(u)\nurlopen(u, timeout=2)\nhttpx.get(u)\nhttpx.get(u, timeout=None)\n"
    )
    assert {line for line, r in rules_at("m.py", code) if r == "rel.no_timeout"} == {3, 6, 9}


def test_open_leak_and_mutable_default() -> None:
    code = (
        "def f(path, x=[], *, y={}, z=None):\n    data = open(path).read()\n"
        "    with open(path) as fh:\n        fh.read()\n    g = open(path)\n    g.close()\n"
        "    return open(path)\n"
    )
    assert rules_at("m.py", code) == {(1, "rel.mutable_default"), (2, "rel.open_leak")}
    assert len([f for f in run("m.py", code) if f.rule == "rel.mutable_default"]) == 1


def test_js_empty_catch_and_shell_set_e() -> None:
    js = "try { a(); } catch (e) {\n}\ntry { b(); } catch (e) { log(e); }\n"
    assert rules_at("x.js", js) == {(1, "rel.empty_catch")}
    assert rules_at("d.sh", "#!/bin/sh\necho hi\n") == {(1, "rel.no_set_e")}
    assert rules_at("d.sh", "#!/bin/sh\nset -euo pipefail\necho hi\n") == set()


# --- maintainability -----------------------------------------------------------------------


def test_long_function_threshold() -> None:
    def make(n: int) -> str:
        return "def f():\n" + "".join(f"    x{i} = {i}\n" for i in range(n))

    assert "mnt.long_function" not in rules("m.py", make(60))
    [f] = [f for f in run("m.py", make(61)) if f.rule == "mnt.long_function"]
    assert (f.line_start, f.line_end) == (1, 62) and "61 code lines" in f.detail


def test_deep_nesting_counts_elif_as_same_level() -> None:
    elifs = "def f(a):\n    if a == 1:\n        pass\n" + "".join(
        f"    elif a == {i}:\n        pass\n" for i in range(2, 9)
    )
    assert "mnt.deep_nesting" not in rules("m.py", elifs)
    deep = (
        "def f(xs):\n    for a in xs:\n        if a:\n            while a:\n"
        "                with a:\n                    if a:\n                        pass\n"
    )
    assert (6, "mnt.deep_nesting") in rules_at("m.py", deep)
    assert "mnt.complexity" in rules("m.py", elifs + "    " + " and ".join(["a"] * 10) + "\n")


def test_params_todo_and_long_file() -> None:
    code = (
        "def ok(self, a, b, c, d, e, f, g):\n    pass\n"
        "def bad(a, b, c, d, e, f, g, h):\n    pass  # TODO: split\n"
        "s = '# TODO not a comment'\n"
    )
    assert rules_at("m.py", code) == {(3, "mnt.too_many_params"), (4, "mnt.todo")}
    assert "mnt.long_file" in rules("big.py", "x = 1\n" * 801)
    assert "mnt.long_file" not in rules("big.py", "x = 1\n" * 800)


# --- robustness and determinism ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "\x00\x01\x02binary\x00" * 50,
        "def broken(:\n    eval(x)\n",
        "(" * 5000,
        "x = 1\n" * 20000,
    ],
)
def test_bad_input_never_raises(text: str) -> None:
    for lens in CODE_LENSES:
        assert isinstance(analyze_code("f.py", text, lens), list)


def test_syntax_error_falls_back_to_text_rules() -> None:
    found = run("f.py", "def broken(:\n    eval(x)\n    requests.get(u)\nexcept:\n")
    assert {(f.line_start, f.rule) for f in found} == {
        (2, "sec.eval"),
        (3, "rel.no_timeout"),
        (4, "rel.bare_except"),
    }
    assert all(f.confidence < 0.85 for f in found)
    assert analyze_code("f.py", "\x00\x01\x02" * 100, "security") == []


def test_deterministic_and_sorted() -> None:
    text = (SAMPLE / "app" / "views.py").read_text()
    first = analyze_code("app/views.py", text, "security")
    assert first == analyze_code("app/views.py", text, "security")
    assert first == sorted(first, key=lambda f: (f.line_start, f.rule))


# --- sample target -------------------------------------------------------------------------


def _sample_findings() -> tuple[set[tuple[str, int, str]], set[tuple[str, int, str]]]:
    """(active, suppressed) findings of every lens over the sample, vendored files skipped as
    the heuristic provider skips them."""
    active, suppressed = set(), set()
    for p in sorted(SAMPLE.rglob("*")):
        rel = p.relative_to(SAMPLE).as_posix()
        if p.is_file() and not vendored_reason(rel):
            text = p.read_text(encoding="utf-8")
            for lens in CODE_LENSES:
                result = analyze_file(rel, text, lens)
                active |= {(rel, f.line_start, f.rule) for f in result.findings}
                suppressed |= {
                    (rel, s.finding.line_start, s.finding.rule) for s in result.suppressed
                }
    return active, suppressed


def test_sample_recall_and_precision() -> None:
    entries = json.loads((SAMPLE.parent / "vulnerable_app.expected.json").read_text())
    expected = {(e["path"], e["line"], e["rule"]) for e in entries if not e.get("suppressed")}
    expected_suppressed = {
        (e["path"], e["line"], e["rule"]) for e in entries if e.get("suppressed")
    }
    found, suppressed = _sample_findings()
    assert not expected - found, f"missed: {sorted(expected - found)}"
    assert not found - expected, f"unexpected: {sorted(found - expected)}"
    assert suppressed == expected_suppressed
    # Every rule class except the >800-line file rule is planted in the sample.
    all_rules = {r for rs in RULES_BY_LENS.values() for r in rs}
    assert all_rules - {r for _, _, r in expected} == {"mnt.long_file"}


def test_clean_sample_file_has_no_findings() -> None:
    assert run("app/models.py", (SAMPLE / "app" / "models.py").read_text()) == []
