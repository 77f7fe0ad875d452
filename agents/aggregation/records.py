"""The plain data the aggregation steps pass along: findings in, clusters out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass
class FindingRow:
    id: int
    task_id: int
    lens: str
    rule: str
    title: str
    detail: str
    severity: str
    confidence: float
    path: str
    line_start: int | None
    line_end: int | None
    evidence: str
    evidence_status: str = "unchecked"


# The Finding columns a FindingRow is read from (``evidence_status`` is worked out afterwards).
ROW_COLUMNS = tuple(f.name for f in fields(FindingRow) if f.name != "evidence_status")
# What a row keeps of a finding as an agent (AgentFinding) or the analyzer (RawFinding) reports
# it; the rest says where it comes from.
REPORTED_FIELDS = tuple(c for c in ROW_COLUMNS if c not in ("id", "task_id", "lens"))


def reported(finding: Any) -> dict[str, Any]:
    """The ``REPORTED_FIELDS`` of an AgentFinding or a RawFinding, by name."""
    return {name: getattr(finding, name) for name in REPORTED_FIELDS}


@dataclass
class Cluster:
    """One issue as several agents saw it. ``members`` is the provenance: one entry per finding
    (its agent, lens, confidence, evidence status, and whether it counted as its agent's vote).
    ``votes`` = distinct agents, ``lenses`` = distinct lenses: the cluster's support."""

    key: str
    title: str
    severity: str
    confidence: float
    path: str
    line_start: int | None
    line_end: int | None
    rule: str
    lenses: list[str]
    detail: str
    evidence: str
    finding_ids: list[int]
    task_ids: list[int]
    votes: int = 1
    kept: bool = True
    dropped_reason: str = ""
    verdict: str = ""
    members: list[dict[str, Any]] = field(default_factory=list)
    # Sum over distinct agents of each one's highest confidence, times lens and evidence factors.
    score: float = 0.0
    evidence_status: str = "unchecked"
    rank: int = 0
    # A model critic's structured verdict (agents.aggregation.model_steps), {} without one.
    critique: dict[str, Any] = field(default_factory=dict)

    @property
    def fabricated(self) -> bool:
        return self.evidence_status in ("evidence_not_found", "no_such_line", "no_such_file")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
