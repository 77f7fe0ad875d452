"""What the model-written report steps read and what the report does with their answers.

A synthesis agent never reads the raw findings: it reads the clusters the deterministic stages
kept, condensed to what a narrative needs (title, severity, where, support, confidence, whether
the evidence was found), each named by a short id ("C3" = rank 3). The critic reads the serious
clusters the same way plus the narrative, and answers one verdict per cluster id. Both answers
are untrusted model output: ids are checked against the clusters sent, text is length-capped, and
the report renders it as escaped Markdown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents.aggregation.records import SEVERITY_RANK, Cluster

# A narrative needs the shape of the findings, not each one: the most urgent items one line
# each, the rest as counts (by severity, lens, file and kind). That keeps the synthesis input
# bounded whatever the number of findings.
MAX_CLUSTERS = 20
MAX_SERIOUS = 30
TOP_GROUPS = 5
QUOTE_CHARS = 200
CHARS_PER_TOKEN = 4  # the same rough ratio on both sides of the comparison
SERIOUS = 3  # severity rank of "high"
VERDICTS = ("upheld", "challenged", "rejected")


def cluster_id(cluster: Cluster) -> str:
    return f"C{cluster.rank}"


def _where(c: Cluster) -> str:
    if not c.path:
        return "-"
    return f"{c.path}:{c.line_start}" if c.line_start else c.path


def _line(c: Cluster) -> str:
    """One item as one line: id | severity | title | where | support | confidence | evidence."""
    lenses = ",".join(sorted(c.lenses)[:4])
    evidence = "NOT FOUND in snapshot" if c.fabricated else c.evidence_status
    title = " ".join(c.title.split())[:120].replace("|", "/")
    return (
        f"{cluster_id(c)} | {c.severity} | {title} | {_where(c)} | "
        f"{c.votes} agent(s): {lenses} | {c.confidence:.2f} | {evidence}"
    )


def _top(counts: dict[str, int]) -> list[list[Any]]:
    return [[k, n] for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:TOP_GROUPS]


def condense(kept: list[Cluster], limit: int = MAX_CLUSTERS) -> dict[str, Any]:
    """The synthesis agent's input: the most urgent kept clusters one line each and counts of
    all of them. ``kept`` must be ranked (``stages.ranked``) so ids follow the report's order."""
    by: dict[str, dict[str, int]] = {"severity": {}, "lens": {}, "file": {}, "kind": {}}
    for c in kept:
        by["severity"][c.severity] = by["severity"].get(c.severity, 0) + 1
        for lens in c.lenses:
            by["lens"][lens] = by["lens"].get(lens, 0) + 1
        if c.path:
            by["file"][c.path] = by["file"].get(c.path, 0) + 1
        kind = c.rule or c.title[:60]
        by["kind"][kind] = by["kind"].get(kind, 0) + 1
    return {
        "total_clusters": len(kept),
        "by_severity": by["severity"],
        "by_lens": by["lens"],
        "top_files": _top(by["file"]),
        "top_kinds": _top(by["kind"]),
        "items": "id | severity | title | where | support | confidence | evidence",
        "clusters": [_line(c) for c in kept[:limit]],
    }


def serious(kept: list[Cluster], limit: int = MAX_SERIOUS) -> list[Cluster]:
    """The clusters the critic challenges: high and critical, most urgent first."""
    return [c for c in kept if SEVERITY_RANK.get(c.severity, 0) >= SERIOUS][:limit]


def critic_input(kept: list[Cluster], narrative: str) -> dict[str, Any]:
    """The critic agent's input: the serious clusters with their evidence quote (which it must
    judge) and the narrative it checks against them."""
    clusters = [
        {
            "id": cluster_id(c),
            "title": " ".join(c.title.split())[:160],
            "severity": c.severity,
            "where": _where(c),
            "agents": c.votes,
            "lenses": sorted(c.lenses)[:4],
            "evidence": "not found in the snapshot" if c.fabricated else c.evidence_status,
            "quote": c.evidence[:QUOTE_CHARS],
        }
        for c in serious(kept)
    ]
    return {"clusters": clusters, "narrative": narrative[:4000]}


def tokens_estimate(payload: Any) -> int:
    return len(json.dumps(payload, default=str, separators=(",", ":"))) // CHARS_PER_TOKEN


def raw_findings_payload(rows: list[Any]) -> list[dict[str, Any]]:
    """What a synthesis agent would read if it were given the raw findings instead (the figure
    the condensed input is measured against)."""
    fields = ("title", "detail", "severity", "confidence", "path", "line_start", "line_end")
    return [
        {**{f: getattr(r, f) for f in fields}, "evidence": r.evidence, "lens": r.lens} for r in rows
    ]


@dataclass
class Verdict:
    cluster: str  # the id the critic saw ("C3")
    key: str  # the cluster it stood for
    verdict: str
    evidence_present: bool
    severity_justified: bool
    duplicate_of: str
    reason: str

    def label(self) -> str:
        parts = [f"critic (model): {self.verdict}"]
        if not self.evidence_present:
            parts.append("evidence missing")
        if not self.severity_justified:
            parts.append("severity not justified")
        if self.duplicate_of:
            parts.append(f"duplicate of {self.duplicate_of}")
        text = "; ".join(parts)
        return f"{text}: {self.reason}" if self.reason else text


def parse_verdicts(items: Any, known: dict[str, str]) -> tuple[list[Verdict], list[str]]:
    """Validated verdicts for the cluster ids the critic was shown (``known``: id → cluster
    key), and notes about what was left out. Model output is untrusted: unknown ids, unknown
    verdicts and repeated ids are dropped, text capped."""
    verdicts: list[Verdict] = []
    problems: list[str] = []
    seen: set[str] = set()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        cid = str(item.get("cluster", ""))[:20]
        verdict = str(item.get("verdict", "")).lower()
        if cid not in known or cid in seen:
            problems.append(f"a verdict for an unknown or repeated item {cid!r} was ignored")
            continue
        if verdict not in VERDICTS:
            problems.append(f"the verdict on {cid} ({verdict[:20]!r}) is not one of {VERDICTS}")
            continue
        seen.add(cid)
        duplicate = str(item.get("duplicate_of") or "")[:20]
        verdicts.append(
            Verdict(
                cluster=cid,
                key=known[cid],
                verdict=verdict,
                evidence_present=bool(item.get("evidence_present", True)),
                severity_justified=bool(item.get("severity_justified", True)),
                duplicate_of=duplicate if duplicate in known and duplicate != cid else "",
                reason=" ".join(str(item.get("reason", "")).split())[:300],
            )
        )
    missing = sorted(set(known) - seen, key=lambda c: int(c[1:]) if c[1:].isdigit() else 0)
    if missing:
        problems.append(f"the critic gave no verdict on {', '.join(missing[:10])}")
    return verdicts, problems


def apply_verdicts(kept: list[Cluster], verdicts: list[Verdict]) -> int:
    """Store each verdict on its cluster, found by key (after the deterministic critic's own
    verdict, which it never hides). Returns how many clusters the model challenged or
    rejected."""
    by_key = {c.key: c for c in kept}
    challenged = 0
    for v in verdicts:
        cluster = by_key.get(v.key)
        if cluster is None:
            continue
        cluster.critique = {
            "by": "model",
            "shown_as": v.cluster,
            "verdict": v.verdict,
            "evidence_present": v.evidence_present,
            "severity_justified": v.severity_justified,
            "duplicate_of": v.duplicate_of,
            "reason": v.reason,
        }
        cluster.verdict = f"{cluster.verdict}; {v.label()}" if cluster.verdict else v.label()
        challenged += v.verdict != "upheld"
    return challenged
