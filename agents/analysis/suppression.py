"""`# nosec` and `# noqa: S…` markers: findings they cover are set aside as suppressed.

A marker is a developer's claim ("reviewed, this is fine"), not proof, so a suppressed finding
is kept and shown as such (the agent output lists it) rather than deleted.

Semantics follow the tools that own the markers:
- bandit: `# nosec` silences every check on the line, `# nosec B608, B602` only those tests;
- ruff: bare `# noqa` silences everything, `# noqa: S608` only flake8-bandit's S608 (= B608).
A listed code also silences our hand-written rule for the same weakness (BANDIT_TO_RULE).
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from agents.analysis.bandit_lens import BANDIT_TO_RULE
from agents.analysis.finding import RawFinding

_NOSEC = re.compile(r"#\s*nosec\b:?\s*(?P<codes>[A-Za-z0-9_ ,]*)", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa\b(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?")
_BANDIT_ID = re.compile(r"\bB\d{3}\b")
_RUFF_BANDIT = re.compile(r"\bS(\d{3})\b")
ALL = "*"


@dataclass(frozen=True)
class Suppressed:
    """A finding a marker covers, with the marker text that did it."""

    finding: RawFinding
    marker: str

    def to_dict(self) -> dict[str, Any]:
        f = self.finding
        return {
            "path": f.path,
            "line": f.line_start,
            "rule": f.rule,
            "title": f.title,
            "severity": f.severity,
            "cwe": f.cwe,
            "marker": self.marker,
        }


def _comments(text: str, lines: list[str], python: bool) -> dict[int, str]:
    """Comment text by line. Python uses the tokenizer, so `"# nosec"` inside a string is not a
    marker; other files (and Python that does not tokenize) fall back to the raw line."""
    if python:
        try:
            return {
                tok.start[0]: tok.string
                for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                if tok.type == tokenize.COMMENT
            }
        except (tokenize.TokenError, SyntaxError):
            pass
    return {i: line for i, line in enumerate(lines, 1) if "#" in line}


def markers(text: str, lines: list[str], *, python: bool) -> dict[int, tuple[str, frozenset[str]]]:
    """line -> (marker text, bandit test ids it silences, or {"*"} for all)."""
    out: dict[int, tuple[str, frozenset[str]]] = {}
    for line, comment in _comments(text, lines, python).items():
        if m := _NOSEC.search(comment):
            ids = frozenset(_BANDIT_ID.findall(m.group("codes") or "")) or frozenset({ALL})
            out[line] = (m.group(0).strip(), ids)
        elif m := _NOQA.search(comment):
            codes = m.group("codes")
            if codes is None:
                out[line] = (m.group(0).strip(), frozenset({ALL}))
            elif ids := frozenset(f"B{n}" for n in _RUFF_BANDIT.findall(codes)):
                out[line] = (m.group(0).strip(), ids)
    return out


def _covers(ids: frozenset[str], finding: RawFinding) -> bool:
    if ALL in ids:
        return True
    if finding.rule.startswith("bandit."):
        return finding.rule.removeprefix("bandit.") in ids
    return any(BANDIT_TO_RULE.get(i) == finding.rule for i in ids)


def split_suppressed(
    findings: list[RawFinding], text: str, lines: list[str], *, python: bool
) -> tuple[list[RawFinding], list[Suppressed]]:
    """(active, suppressed). Only security findings are subject to markers: `# nosec` and the
    S codes are security claims and say nothing about reliability or style."""
    marks = markers(text, lines, python=python)
    if not marks:
        return findings, []
    active: list[RawFinding] = []
    suppressed: list[Suppressed] = []
    for f in findings:
        hit = next(
            (
                marks[n]
                for n in range(f.line_start, f.line_end + 1)
                if n in marks and _covers(marks[n][1], f)
            ),
            None,
        )
        if hit is not None and f.lens == "security":
            suppressed.append(Suppressed(f, hit[0]))
        else:
            active.append(f)
    return active, suppressed
