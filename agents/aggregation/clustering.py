"""Semantic dedup: findings about the same issue at the same place become one cluster, whichever
agent or lens reported them and however they worded it.

Two findings are linked when they are at the same place (same path; line ranges within
``line_window`` lines of each other, or no lines) and either share a rule id or their texts'
cosine similarity reaches ``threshold``. Clusters are the connected components of those links,
so the result does not depend on the order findings arrive in. Links are refused when the two
findings name different rules, or when one agent reported them at different lines (an agent
listing two places means two places).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from agents.aggregation.evidence import FABRICATED, best_status
from agents.aggregation.records import SEVERITY_RANK, Cluster, FindingRow
from agents.aggregation.similarity import Vectors

# Each additional lens behind a cluster adds this much to its score: independent angles agreeing
# is stronger evidence than more agents with the same angle.
LENS_BONUS = 0.25
# A cluster whose location or quote could not be found keeps this share of its score and
# confidence: shown to the reviewer, flagged, ranked last, never silently trusted.
FABRICATED_FACTOR = 0.25


@dataclass(frozen=True)
class DedupSettings:
    threshold: float = 0.15
    line_window: int = 3


def _text(row: FindingRow) -> str:
    return f"{row.title}. {row.detail}".strip()


def _near(a: FindingRow, b: FindingRow, window: int) -> bool:
    if a.line_start is None or b.line_start is None:
        return True
    a_end = max(a.line_start, a.line_end or a.line_start)
    b_end = max(b.line_start, b.line_end or b.line_start)
    return a.line_start <= b_end + window and b.line_start <= a_end + window


def _compatible(a: FindingRow, b: FindingRow) -> bool:
    if a.rule and b.rule and a.rule != b.rule:
        return False
    same_lines = (a.line_start, a.line_end) == (b.line_start, b.line_end)
    return a.task_id != b.task_id or same_lines


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def link_components(
    rows: list[FindingRow], vectors: Vectors, settings: DedupSettings
) -> list[list[FindingRow]]:
    """Rows grouped into components. ``vectors[i]`` is the unit embedding of ``rows[i]``."""
    uf = _UnionFind(len(rows))
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_path[row.path].append(i)
    for indexes in by_path.values():
        block = vectors[indexes]
        product: Any = block @ block.T
        sims = product.toarray() if sparse.issparse(product) else np.asarray(product)
        for x, i in enumerate(indexes):
            for y in range(x + 1, len(indexes)):
                a, b = rows[i], rows[indexes[y]]
                if not _near(a, b, settings.line_window) or not _compatible(a, b):
                    continue
                same_rule = bool(a.rule) and a.rule == b.rule
                if same_rule or sims[x, y] >= settings.threshold - 1e-9:
                    uf.union(i, indexes[y])
    groups: dict[int, list[FindingRow]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[uf.find(i)].append(row)
    return list(groups.values())


def build_cluster(members: list[FindingRow]) -> Cluster:
    """One cluster from its findings: the representative is the best-evidenced, then the most
    confident, then the oldest finding; severity is the highest any agent gave."""
    members = sorted(members, key=lambda r: r.id)
    rep = min(
        members,
        key=lambda r: (r.evidence_status in FABRICATED, -r.confidence, r.id),
    )
    per_agent: dict[int, float] = {}
    vote_of: dict[int, int] = {}
    for r in members:
        if r.confidence > per_agent.get(r.task_id, -1.0):
            per_agent[r.task_id] = r.confidence
            vote_of[r.task_id] = r.id
    lenses = sorted({r.lens for r in members})
    product = 1.0
    for c in per_agent.values():
        product *= 1 - c
    status = best_status([r.evidence_status for r in members])
    weighted = sum(per_agent.values()) * (1 + LENS_BONUS * (len(lenses) - 1))
    confidence = 1 - product
    if status in FABRICATED:
        weighted *= FABRICATED_FACTOR
        confidence *= FABRICATED_FACTOR
    start, end = rep.line_start, rep.line_end
    if start is None:
        located = [r for r in members if r.line_start is not None]
        if located:
            start = min(r.line_start or 0 for r in located)
            end = max(r.line_end or r.line_start or 0 for r in located)
    ids = [r.id for r in members]
    return Cluster(
        key="c" + hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:10],
        title=rep.title,
        severity=max((r.severity for r in members), key=lambda s: SEVERITY_RANK.get(s, 0)),
        confidence=confidence,
        path=rep.path,
        line_start=start,
        line_end=end,
        rule=rep.rule or next((r.rule for r in members if r.rule), ""),
        lenses=lenses,
        detail=rep.detail,
        evidence=rep.evidence,
        finding_ids=ids,
        task_ids=sorted(per_agent),
        votes=len(per_agent),
        members=[
            {
                "finding_id": r.id,
                "task_id": r.task_id,
                "lens": r.lens,
                "title": r.title,
                "severity": r.severity,
                "confidence": r.confidence,
                "path": r.path,
                "line_start": r.line_start,
                "line_end": r.line_end,
                "evidence_status": r.evidence_status,
                # Only an agent's most confident finding is its vote; repeats are not votes.
                "vote": vote_of[r.task_id] == r.id,
            }
            for r in members
        ],
        score=round(weighted, 4),
        evidence_status=status,
    )
