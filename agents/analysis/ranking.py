"""Ordering of findings (most urgent first) and merging of bandit's issues with ours.

Ranking: security before reliability before maintainability; within a lens by severity, then by
how much damage the weakness class usually allows (CWE weight), then confidence. So a bare
`except:` never outranks an injection or unsafe deserialization, whatever their confidences.
"""

from __future__ import annotations

import dataclasses
import re

from agents.analysis.bandit_lens import BANDIT_TO_RULE
from agents.analysis.finding import RawFinding

LENS_TIER = {"security": 0, "reliability": 1, "maintainability": 2}
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
# Rough impact of a weakness class: code/command execution and injection first, then data
# exposure, then hardening issues. Unlisted CWEs weigh 1, findings without a CWE 0.
CWE_WEIGHT = {
    78: 10,  # OS command injection
    94: 10,  # code injection
    95: 10,  # eval injection
    1336: 10,  # server-side template injection
    89: 10,  # SQL injection
    502: 9,  # unsafe deserialization
    798: 8,  # hard-coded credentials
    321: 8,  # hard-coded key
    22: 8,  # path traversal
    918: 8,  # SSRF
    79: 7,  # XSS
    611: 7,  # XXE
    643: 8,  # XPath injection
    113: 5,  # HTTP header injection
    1021: 3,  # clickjacking
    209: 3,  # error details to the client
    1004: 3,  # cookie without HttpOnly
    295: 6,  # certificate validation
    352: 6,  # CSRF
    601: 5,  # open redirect
    338: 5,  # weak PRNG for secrets
    330: 5,
    327: 4,  # broken crypto
    328: 4,  # weak hash
    489: 4,  # debug code left on
    259: 8,  # hard-coded password (bandit B105-B107)
}
_CWE_IN_TEXT = re.compile(r"\bCWE-(\d+)\b")


def cwe_weight(cwe: int | None) -> int:
    return 0 if not cwe else CWE_WEIGHT.get(cwe, 1)


def cwe_from_text(text: str) -> int | None:
    """The CWE a detail text names (stored rows carry it only there)."""
    m = _CWE_IN_TEXT.search(text or "")
    return int(m.group(1)) if m else None


def rank_key(lens: str, severity: str, cwe: int | None, confidence: float) -> tuple[int, ...]:
    """Sort key, smallest first = most urgent."""
    return (
        LENS_TIER.get(lens, 3),
        -SEVERITY_RANK.get(severity, 0),
        -cwe_weight(cwe),
        -round(confidence * 100),
    )


def finding_rank(f: RawFinding) -> tuple[int, ...]:
    return rank_key(f.lens, f.severity, f.cwe, f.confidence)


def _span(f: RawFinding) -> int:
    return f.line_end - f.line_start


def _same_place(ours: RawFinding, theirs: RawFinding) -> bool:
    """Overlapping lines, or bandit's line is the one our detail names as where the value
    was built (sec.sql reports the execute() call and says "built ... on line N"; bandit
    reports the line building the string)."""
    return (
        ours.line_start <= theirs.line_end and theirs.line_start <= ours.line_end
    ) or f"on line {theirs.line_start}." in ours.detail


def merge_bandit(ours: list[RawFinding], theirs: list[RawFinding]) -> list[RawFinding]:
    """Ours plus bandit's, one finding where both report the same weakness on overlapping
    lines. The narrower location wins (it points at the offending call, not its statement);
    on a tie ours wins, because our evidence masks secrets and our detail says how to fix it.
    The winner names the other origin, so a reviewer sees both tools agreed."""
    merged = list(ours)
    for b in theirs:
        rule = BANDIT_TO_RULE.get(b.rule.removeprefix("bandit."))
        twin = next(
            (
                i
                for i, f in enumerate(merged)
                if rule is not None and f.rule == rule and f.path == b.path and _same_place(f, b)
            ),
            None,
        )
        if twin is None:
            merged.append(b)
            continue
        mine = merged[twin]
        keep, other = (b, mine) if _span(b) < _span(mine) else (mine, b)
        also = (
            f"Also reported by {other.origin}."
            if other.origin != "heuristic"
            else f"Also matched our rule {other.rule}."
        )
        merged[twin] = dataclasses.replace(
            keep,
            detail=f"{keep.detail} {also}"[:4000],
            confidence=max(keep.confidence, other.confidence),
            severity=max(keep.severity, other.severity, key=SEVERITY_RANK.__getitem__),
            cwe=keep.cwe or other.cwe,
        )
    return merged
