"""The offline depth tier is a real second pass: the whole file re-analysed with every rule of
the lens, so a breadth item it contradicts is rejected and one it supports is confirmed."""

from __future__ import annotations

from agents.analysis import analyze_file
from agents.tiers import clean_verdicts, verify_offline

APP = """\
import sqlite3


def find_user(request, db):
    name = request.args["name"]
    return db.execute("SELECT * FROM users WHERE name = '%s'" % name)


def count_users(db):
    return db.execute("SELECT count(*) FROM users WHERE active = ?", (1,))
"""


def _item(number: int, **fields: object) -> dict[str, object]:
    base = {
        "id": f"I{number}",
        "fingerprint": f"fp{number}",
        "title": "",
        "detail": "",
        "severity": "high",
        "confidence": 0.5,
        "path": "app.py",
        "evidence": "",
    }
    return {**base, **fields}


def test_the_whole_file_pass_confirms_what_it_supports_and_rejects_what_it_contradicts() -> None:
    real = next(f for f in analyze_file("app.py", APP, "security").findings if f.line_start == 6)
    items = [
        # What the analysis itself reports on line 6: supported.
        _item(1, rule=real.rule, line_start=6, line_end=6, evidence=real.evidence),
        # A breadth claim of SQL injection on the parameterised query of line 10: contradicted.
        _item(
            2,
            rule="sql-injection",
            line_start=10,
            line_end=10,
            evidence='return db.execute("SELECT count(*) FROM users WHERE active = ?", (1,))',
        ),
        # A line the file does not have, and a quote that is not where it is said to be.
        _item(3, rule="x", line_start=99, line_end=99),
        _item(4, rule="x", line_start=1, line_end=1, evidence="eval(payload)"),
    ]
    verdicts = {
        v["item"]: v for v in verify_offline(items, "security", {"app.py": APP}.__getitem__)
    }
    assert verdicts["I1"]["verdict"] == "confirmed", verdicts["I1"]
    assert verdicts["I2"]["verdict"] == "rejected"
    assert "reports nothing at app.py:10" in verdicts["I2"]["reason"]
    assert verdicts["I3"]["verdict"] == "rejected" and "no line 99" in verdicts["I3"]["reason"]
    assert verdicts["I4"]["verdict"] == "rejected" and "evidence" in verdicts["I4"]["reason"]


def test_another_problem_on_the_same_lines_corrects_the_item() -> None:
    real = next(f for f in analyze_file("app.py", APP, "security").findings if f.line_start == 6)
    item = _item(1, rule="made-up-rule", severity="low", line_start=6, line_end=6)
    (verdict,) = verify_offline([item], "security", {"app.py": APP}.__getitem__)
    assert verdict["verdict"] == "corrected"
    assert verdict["severity"] == real.severity and real.rule in verdict["reason"]


def test_a_file_outside_the_snapshot_is_rejected() -> None:
    def missing(path: str) -> str:
        raise KeyError(path)

    (verdict,) = verify_offline([_item(1, rule="r", line_start=1)], "security", missing)
    assert verdict["verdict"] == "rejected"


def test_model_verdicts_are_untrusted_unknown_ids_and_bad_values_are_dropped() -> None:
    items = [_item(1, rule="r", line_start=1), _item(2, rule="r", line_start=2)]
    answered = [
        {"item": "I1", "verdict": "rejected", "reason": "no"},
        {"item": "I1", "verdict": "confirmed", "reason": "a second verdict is ignored"},
        {"item": "I2", "verdict": "corrected", "severity": "apocalyptic", "confidence": 2},
        {"item": "I9", "verdict": "confirmed"},
        {"item": "I2", "verdict": "approved"},
        "not an object",
    ]
    verdicts = clean_verdicts(items, answered)
    assert verdicts == {"fp1": {"verdict": "rejected", "reason": "no"}}
    fixed = clean_verdicts(
        items, [{"item": "I2", "verdict": "corrected", "severity": "low", "confidence": 7}]
    )
    assert fixed["fp2"] == {
        "verdict": "corrected",
        "reason": "",
        "severity": "low",
        "confidence": 1.0,
    }
