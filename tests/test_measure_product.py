"""scripts/measure_product.py: how the blind measurement scores a report against labels."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from measure_product import Found, hits, sarif_findings, score_app


def _cls(rule: str) -> str:
    return rule.removeprefix("sec.")


SQL = {"path": "app.py", "line": 10, "class": "sql", "cwe": 89, "also": [20]}


def test_a_finding_hits_by_class_or_cwe_within_three_lines_of_the_label_or_its_also_line():
    assert hits(Found("app.py", 13, "sec.sql", "sql"), SQL)
    assert not hits(Found("app.py", 14, "sec.sql", "sql"), SQL)
    assert hits(Found("app.py", 22, "sec.sql", "sql"), SQL)  # the sink line named in `also`
    assert hits(Found("app.py", 10, "sec.query", "query", frozenset({89})), SQL)
    assert not hits(Found("app.py", 10, "sec.xss", "xss", frozenset({79})), SQL)
    assert not hits(Found("other.py", 10, "sec.sql", "sql"), SQL)


def test_precision_counts_label_hits_and_true_judgements_and_lists_the_rest():
    labels = [SQL, {"path": "v.py", "line": 5, "class": "idor", "cwe": 639}]
    ours = [
        Found("app.py", 10, "sec.sql", "sql"),
        Found("app.py", 40, "sec.secret", "secret"),
        Found("app.py", 50, "sec.debug", "debug"),
        Found("static/lib/jquery.js", 3, "sec.eval", "eval"),
        Found("static/js/loader.js", 9, "sec.eval", "eval"),
    ]
    judged = [
        {"path": "app.py", "line": 40, "rule": "sec.secret", "true": False, "why": "a label"},
        {"path": "app.py", "line": 50, "rule": "sec.debug", "true": True, "why": "DEBUG on"},
        {"path": "static/js/loader.js", "line": 9, "rule": "sec.eval", "true": False, "why": "lib"}
        | {"vendored": True},
    ]
    theirs = [Found("app.py", 9, "B608", "sql", frozenset({89}))]
    s = score_app(labels, ours, theirs, judged, {"sql", "secret"}, {89})
    assert (s.labels, s.recalled, s.claimed, s.claimed_recalled) == (2, 1, 1, 1)
    assert (s.bandit_recalled, s.security, s.true, s.false) == (1, 5, 2, 2)
    assert [f.path for f in s.unjudged] == ["static/lib/jquery.js"]
    assert [f.path for f in s.vendored] == ["static/lib/jquery.js", "static/js/loader.js"]
    assert [m["class"] for m in s.missed] == ["idor"]


def test_only_security_results_of_the_sarif_are_read_with_their_cwe_and_unquoted_path():
    def result(rule: str, uri: str, text: str, lenses: list[str]) -> dict:
        loc = {"artifactLocation": {"uri": uri}, "region": {"startLine": 7}}
        return {
            "ruleId": rule,
            "message": {"text": text},
            "locations": [{"physicalLocation": loc}],
            "properties": {"lenses": lenses},
        }

    sarif = {
        "runs": [
            {
                "results": [
                    result("sec.sql", "my%20app/x.py", "SQL built (CWE-89)", ["security"]),
                    result("mnt.long_function", "x.py", "Long", ["maintainability"]),
                    result("harness/idor", "x.py", "Object by id (CWE-639)", ["security"]),
                ]
            }
        ]
    }
    found = sarif_findings(sarif, _cls)
    assert [(f.path, f.line, f.cls, set(f.cwes)) for f in found] == [
        ("my app/x.py", 7, "sql", {89}),
        ("x.py", 7, "harness/idor", {639}),
    ]
