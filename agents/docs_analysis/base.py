"""The helper every lens rule writes through: builds ``RawFinding``s and caps floods.

A rule that fires hundreds of times on one huge document tells the reader nothing more than its
first ``MAX_PER_RULE`` hits do, so each rule is capped; the cap keeps worst-case output bounded.
"""

from __future__ import annotations

import re
from collections import Counter

from agents.docs_analysis.text import ParsedDocument
from agents.docs_analysis.types import RawFinding, Severity

MAX_PER_RULE = 50

CITATION_RE = re.compile(
    r"\]\(|https?://|\[\^?\d+\]|\[\^[\w-]+\]|\b(?:source|sources|according to|cited|citation|"
    r"reference|study|survey|report(?:ed)? by|et al|benchmark|measured|see (?:the )?(?:appendix|"
    r"table|figure|section))\b|\(\s*(?:19|20)\d\d\s*\)",
    re.IGNORECASE,
)


def has_citation(text: str) -> bool:
    """True when ``text`` carries a link, footnote, year reference or sourcing phrase."""
    return CITATION_RE.search(text) is not None


class FindingSink:
    """Collects findings for one document and lens; ``add`` is a no-op past the per-rule cap."""

    def __init__(self, doc: ParsedDocument, lens: str) -> None:
        self.doc = doc
        self.lens = lens
        self.findings: list[RawFinding] = []
        self._per_rule: Counter[str] = Counter()

    def add(
        self,
        rule: str,
        title: str,
        detail: str,
        severity: Severity,
        confidence: float,
        line_start: int,
        line_end: int | None = None,
        evidence: str | None = None,
    ) -> None:
        """Record one finding; ``evidence`` defaults to the source lines of the range."""
        if self._per_rule[rule] >= MAX_PER_RULE:
            return
        self._per_rule[rule] += 1
        end = max(line_start, line_end if line_end is not None else line_start)
        text = self.doc.evidence(line_start, end) if evidence is None else evidence
        self.findings.append(
            RawFinding(
                rule=f"{self.lens}.{rule}",
                lens=self.lens,
                title=title[:200],
                detail=detail,
                severity=severity,
                confidence=round(min(1.0, max(0.0, confidence)), 2),
                path=self.doc.path,
                line_start=line_start,
                line_end=end,
                evidence=" ".join(text.split())[:300],
            )
        )
