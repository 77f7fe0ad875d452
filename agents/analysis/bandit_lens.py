"""Bandit (PyCQA's Python security linter) run in-process on one file's text, as findings.

Bandit knows far more call patterns than our hand-written rules (B301-B324 blacklist calls,
B5xx crypto/TLS, B6xx injection, B7xx templating), so the security lens runs it and merges its
issues with ours. It runs as a library, not a subprocess: the snapshot text is already in
memory, no file is written, and nothing reaches the network.
"""

from __future__ import annotations

import io
import logging
import warnings
from functools import cache
from importlib.metadata import version
from typing import Any

from bandit.core import config, meta_ast, metrics, node_visitor, test_set

from agents.analysis.base import make_evidence
from agents.analysis.finding import RawFinding, Severity

# Bandit checks we leave out, each for a reason:
# - B101 (assert) fires on every test file;
# - B401-B415 flag *imports* of risky modules; the call-site tests report the use itself;
# - B105-B107 (hard-coded passwords) print the secret unmasked and know no placeholders; our
#   sec.secret rule covers them with masked evidence;
# - B110/B112 (try/except/pass|continue) and B113 (no timeout) are reliability issues our
#   reliability lens reports; from the security lens they would be counted twice;
# - B603/B607 flag every subprocess call with an argument list, the safe form we recommend;
# - B311 flags every use of `random`; sec.weak_random reports the ones that make secrets.
_EXCLUDED_TESTS = [
    "B101",
    "B105",
    "B106",
    "B107",
    "B110",
    "B311",
    "B112",
    "B113",
    "B603",
    "B607",
    *(f"B4{n:02d}" for n in range(1, 16)),
]
_SEVERITY: dict[str, Severity] = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
_CONFIDENCE = {"LOW": 0.4, "MEDIUM": 0.65, "HIGH": 0.85}

# Bandit test id -> our rule id, where both report the same weakness. Used to de-duplicate
# (one finding per weakness and line) and to let `# noqa: S608` silence our sec.sql too.
BANDIT_TO_RULE: dict[str, str] = {
    "B102": "sec.eval",
    "B307": "sec.eval",
    "B602": "sec.shell",
    "B604": "sec.shell",
    "B605": "sec.shell",
    "B608": "sec.sql",
    "B105": "sec.secret",
    "B106": "sec.secret",
    "B107": "sec.secret",
    "B301": "sec.deserialize",
    "B302": "sec.deserialize",
    "B506": "sec.deserialize",
    "B501": "sec.tls",
    "B323": "sec.tls",
    "B303": "sec.weak_hash",
    "B324": "sec.weak_hash",
    "B201": "sec.debug",
    "B308": "sec.xss",
    "B703": "sec.xss",
    "B704": "sec.xss",
    "B701": "sec.xss",
    "B310": "sec.ssrf",
}


@cache
def _tests() -> test_set.BanditTestSet:
    # Building the test set loads bandit's plugins through stevedore: do it once per process.
    logging.getLogger("bandit").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stevedore's deprecation notes, not ours to fix
        return test_set.BanditTestSet(config.BanditConfig(), profile={"exclude": _EXCLUDED_TESTS})


def bandit_version() -> str:
    return version("bandit")


def bandit_findings(path: str, text: str, lines: list[str]) -> list[RawFinding]:
    """Bandit's issues for one Python file, including the ones a `# nosec` would hide (the
    caller records those as suppressed instead of losing them). [] when bandit cannot parse."""
    data = text.encode("utf-8", "replace")
    visitor = node_visitor.BanditNodeVisitor(
        path, io.BytesIO(data), meta_ast.BanditMetaAst(), _tests(), False, {}, metrics.Metrics()
    )
    try:
        visitor.process(data)
    except (SyntaxError, ValueError, RecursionError):
        return []
    return [
        _finding(path, lines, issue)
        for issue in visitor.tester.results
        if not _constant_shell(issue)
    ]


def _constant_shell(issue: Any) -> bool:
    """Bandit rates a shell call on a constant command LOW ("seems safe"): nothing can be
    injected into it, and sec.shell stays silent there too."""
    return BANDIT_TO_RULE.get(issue.test_id) == "sec.shell" and issue.severity == "LOW"


def _finding(path: str, lines: list[str], issue: Any) -> RawFinding:
    start = max(1, int(issue.lineno))
    span = [int(n) for n in (issue.linerange or [start])]
    end = min(max(span[-1], start), start + 4)
    cwe = int(issue.cwe.id) or None
    origin = f"bandit {issue.test_id}"
    detail = f"{issue.text} ({origin}: {issue.test}" + (f", CWE-{cwe})" if cwe else ")")
    return RawFinding(
        rule=f"bandit.{issue.test_id}",
        lens="security",
        title=f"{origin}: {issue.test.replace('_', ' ')}"[:200],
        detail=detail,
        severity=_SEVERITY.get(issue.severity, "medium"),
        confidence=_CONFIDENCE.get(issue.confidence, 0.5),
        path=path,
        line_start=start,
        line_end=end,
        evidence=make_evidence(lines, start, end),
        cwe=cwe,
        origin=origin,
    )
