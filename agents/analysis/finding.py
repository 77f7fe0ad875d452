"""What every offline analyzer rule produces, before the harness turns it into a Finding row."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
EVIDENCE_MAX = 300


@dataclass(frozen=True)
class RawFinding:
    """One finding of a heuristic rule.

    Contract: ``line_start``/``line_end`` are 1-based and inclusive, ``line_end >= line_start``;
    ``confidence`` is in [0, 1]; ``evidence`` is at most 300 characters of the offending text.
    """

    rule: str
    lens: str
    title: str
    detail: str
    severity: Severity
    confidence: float
    path: str
    line_start: int
    line_end: int
    evidence: str
    # MITRE CWE id where one applies (None for style/maintenance smells); also named in
    # `detail` because the stored Finding row has no column for it yet.
    cwe: int | None = None
    # Where the finding comes from: "heuristic" (our rules) or e.g. "bandit B608".
    origin: str = "heuristic"

    def __post_init__(self) -> None:
        # Fail loudly at construction: a bad finding is a bug in a rule, not in the input.
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} outside [0, 1]")
        if self.line_start < 1 or self.line_end < self.line_start:
            raise ValueError(f"bad line range {self.line_start}-{self.line_end}")
        if len(self.evidence) > EVIDENCE_MAX:
            raise ValueError("evidence longer than 300 characters")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict with exactly the dataclass fields."""
        return asdict(self)
