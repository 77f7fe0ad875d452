"""The aggregation steps. Pure functions over plain data so they are easy to test."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from agents.analysis.ranking import LENS_TIER, cwe_from_text, rank_key

AGGREGATION_STEPS: dict[str, str] = {
    "dedup": "Merge findings that point at the same place for the same reason.",
    "quorum": "Keep a finding only when enough independent agents reported it (voting).",
    "confidence": "Combine the agents' confidences and drop what stays below the threshold.",
    "synthesis": "Write the report: overview, ranked findings, themes.",
    "critic": "Check the report: coverage gaps, failed or skipped agents, weak evidence.",
}
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


@dataclass
class Cluster:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReportDraft:
    chain: list[str]
    clusters: list[Cluster]
    markdown: str = ""
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    critique: list[str] = field(default_factory=list)


@dataclass
class RunFacts:
    """What the report needs to know about the run besides its findings."""

    run_id: int
    playbook: str
    playbook_title: str
    target: str
    status: str
    provider: str
    is_llm: bool
    agents: dict[str, int]
    cost_usd: str
    budget_usd: str | None
    unpriced_calls: int
    tokens: dict[str, int]
    skipped_files: list[dict[str, str]]
    failed_scopes: list[str]
    skipped_scopes: list[str]
    options: dict[str, Any]
    synthesis_texts: list[str] = field(default_factory=list)
    # Output-limit notes the agents left among their findings (filled by run_chain).
    capped_outputs: list[FindingRow] = field(default_factory=list)


def _norm_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def _single(row: FindingRow, key: str) -> Cluster:
    """A cluster of one finding."""
    return Cluster(
        key=key,
        title=row.title,
        severity=row.severity,
        confidence=row.confidence,
        path=row.path,
        line_start=row.line_start,
        line_end=row.line_end,
        rule=row.rule,
        lenses=[row.lens],
        detail=row.detail,
        evidence=row.evidence,
        finding_ids=[row.id],
        task_ids=[row.task_id],
    )


def dedup(rows: list[FindingRow]) -> list[Cluster]:
    """Same file, same rule (or same normalised title), overlapping lines → one cluster."""
    clusters: dict[str, Cluster] = {}
    for row in sorted(rows, key=lambda r: (r.path, r.line_start or 0, r.rule, r.id)):
        what = row.rule or _norm_title(row.title)
        key = f"{row.path}|{row.line_start or ''}|{what}"
        cluster = clusters.get(key)
        if cluster is None:
            clusters[key] = _single(row, key)
            continue
        cluster.finding_ids.append(row.id)
        independent = row.task_id not in cluster.task_ids
        if independent:
            cluster.task_ids.append(row.task_id)
        if row.lens not in cluster.lenses:
            cluster.lenses.append(row.lens)
        if SEVERITY_RANK.get(row.severity, 0) > SEVERITY_RANK.get(cluster.severity, 0):
            cluster.severity = row.severity
        # Only independent confirmations (other agents) raise confidence: 1 - Π(1 - c); an
        # agent repeating itself does not.
        if independent:
            cluster.confidence = 1 - (1 - cluster.confidence) * (1 - row.confidence)
        else:
            cluster.confidence = max(cluster.confidence, row.confidence)
    for cluster in clusters.values():
        cluster.votes = len(cluster.task_ids)
    return list(clusters.values())


def quorum(clusters: list[Cluster], needed: int) -> None:
    for cluster in clusters:
        if cluster.kept and cluster.votes < needed:
            cluster.kept = False
            cluster.dropped_reason = f"{cluster.votes} vote(s), quorum is {needed}"


def confidence(clusters: list[Cluster], threshold: float) -> None:
    for cluster in clusters:
        cluster.confidence = round(min(1.0, cluster.confidence), 3)
        if cluster.kept and cluster.confidence < threshold:
            cluster.kept = False
            cluster.dropped_reason = f"confidence {cluster.confidence:.2f} < {threshold:.2f}"


def ranked(clusters: list[Cluster]) -> list[Cluster]:
    """Kept clusters, most urgent first: security before reliability before maintainability,
    then severity, CWE weight (injection above weak hashing) and confidence."""

    def key(c: Cluster) -> tuple[Any, ...]:
        lens = min(c.lenses, key=lambda name: LENS_TIER.get(name, 3), default="")
        cwe = cwe_from_text(c.detail)
        return (*rank_key(lens, c.severity, cwe, c.confidence), c.path, c.line_start or 0)

    return sorted((c for c in clusters if c.kept), key=key)


# An agent that hit its output limit reports what it dropped as one finding with this rule
# (agents/providers/heuristic.py); the report shows it in the critique, not as an issue.
OUTPUT_CAP_RULE = "meta.output_cap"


def _location(c: Cluster) -> str:
    if not c.path:
        return "—"
    if c.line_start and c.line_end and c.line_end != c.line_start:
        return f"{c.path}:{c.line_start}-{c.line_end}"
    return f"{c.path}:{c.line_start}" if c.line_start else c.path


_MD_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def _md_escape(text: str) -> str:
    """Untrusted text (target names, paths, titles) as literal Markdown text: every Markdown
    punctuation character backslash-escaped, so ``[x](https:evil)`` never becomes a link and a
    pipe never splits a table row; newlines folded."""
    return _MD_PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def _md_code(text: str) -> str:
    """Untrusted text as an inline code span (backslashes do not escape inside one, so a
    backtick in the text is replaced rather than allowed to close the span)."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


def synthesis(draft: ReportDraft, facts: RunFacts) -> None:
    kept = ranked(draft.clusters)
    by_sev: dict[str, int] = {}
    for c in kept:
        by_sev[c.severity] = by_sev.get(c.severity, 0) + 1
    lines = [f"# {facts.playbook_title}: {_md_escape(facts.target)}", ""]
    if not facts.is_llm:
        lines += [
            "> Produced by the offline heuristic analyzer (deterministic static analysis, "
            "no language model). Costs are nominal.",
            "",
        ]
    agents = facts.agents
    lines += [
        "## Overview",
        "",
        f"- Agents: {agents.get('succeeded', 0)} succeeded, {agents.get('failed', 0)} failed, "
        f"{agents.get('skipped', 0)} skipped, of {agents.get('total', 0)}",
        f"- Findings: {len(kept)} distinct issue(s) from "
        f"{sum(len(c.finding_ids) for c in draft.clusters)} raw finding(s)"
        + (
            ", by severity: "
            + ", ".join(
                f"{n} {s}" for s, n in sorted(by_sev.items(), key=lambda kv: -SEVERITY_RANK[kv[0]])
            )
            if by_sev
            else ""
        ),
        f"- Cost: ${facts.cost_usd}"
        + (f" of a ${facts.budget_usd} budget" if facts.budget_usd else "")
        + (f" (+{facts.unpriced_calls} unpriced call(s))" if facts.unpriced_calls else ""),
        f"- Tokens: {facts.tokens.get('input', 0):,} in, {facts.tokens.get('output', 0):,} out",
        "",
    ]
    for note in draft.notes:
        lines += [f"**Note:** {note}", ""]
    for text in facts.synthesis_texts:
        lines += ["## Synthesis", "", text.strip(), ""]
    if kept:
        lines += [
            "## Findings",
            "",
            "| Severity | Finding | Location | Confidence | Votes |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in kept[:200]:
            lines.append(
                f"| {c.severity} | {_md_escape(c.title)} | {_md_code(_location(c))} | "
                f"{c.confidence:.2f} | {c.votes} |"
            )
        if len(kept) > 200:
            lines.append(f"| … | {len(kept) - 200} more in the findings list | | | |")
        lines.append("")
        top = [c for c in kept if SEVERITY_RANK.get(c.severity, 0) >= 3][:10]
        if top:
            lines += ["## Most serious", ""]
            for c in top:
                lines += [
                    f"### {_md_escape(c.title)} ({_md_code(_location(c))})",
                    "",
                    _md_escape(c.detail) or "—",
                    "",
                ]
                if c.evidence:
                    lines += ["```", c.evidence.replace("```", "` ` `")[:500], "```", ""]
    else:
        lines += ["## Findings", "", "No finding passed the aggregation chain.", ""]
    draft.markdown = "\n".join(lines)


def critic(draft: ReportDraft, facts: RunFacts) -> None:
    notes: list[str] = []
    if facts.failed_scopes:
        notes.append(
            f"{len(facts.failed_scopes)} agent(s) failed; not covered: "
            + ", ".join(facts.failed_scopes[:10])
            + ("…" if len(facts.failed_scopes) > 10 else "")
        )
    if facts.skipped_scopes:
        notes.append(
            f"{len(facts.skipped_scopes)} agent(s) were skipped; not covered: "
            + ", ".join(facts.skipped_scopes[:10])
            + ("…" if len(facts.skipped_scopes) > 10 else "")
        )
    if facts.skipped_files:
        reasons: dict[str, int] = {}
        for item in facts.skipped_files:
            reasons[item.get("reason", "?")] = reasons.get(item.get("reason", "?"), 0) + 1
        notes.append(
            "files left out of the snapshot: "
            + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        )
    weak = [
        c
        for c in ranked(draft.clusters)
        if SEVERITY_RANK.get(c.severity, 0) >= 3 and c.confidence < 0.6
    ]
    for c in weak:
        c.verdict = "verify: serious but low confidence"
    if weak:
        notes.append(f"{len(weak)} serious finding(s) have low confidence: verify them by hand")
    capped = [r for r in facts.capped_outputs if r.rule == OUTPUT_CAP_RULE]
    if capped:
        notes.append(
            f"{len(capped)} agent(s) hit their output limit and dropped findings: "
            + "; ".join(r.title.split(" ", 1)[0] + f" in {r.path or '?'}" for r in capped[:10])
            + ("…" if len(capped) > 10 else "")
            + " (see each note's detail for the lines)"
        )
    dropped = [c for c in draft.clusters if not c.kept]
    if dropped:
        notes.append(f"{len(dropped)} finding cluster(s) were dropped by quorum or confidence")
    for c in ranked(draft.clusters):
        if not c.verdict:
            c.verdict = "confirmed by several agents" if c.votes > 1 else "single report"
    draft.critique = notes
    if notes:
        draft.markdown += "\n## Critique\n\n" + "\n".join(f"- {_md_escape(n)}" for n in notes)
        draft.markdown += "\n"


def run_chain(rows: list[FindingRow], facts: RunFacts, chain: list[str]) -> ReportDraft:
    unknown = [step for step in chain if step not in AGGREGATION_STEPS]
    if unknown:
        raise ValueError(f"Unknown aggregation step(s): {', '.join(unknown)}")
    facts.capped_outputs = [r for r in rows if r.rule == OUTPUT_CAP_RULE]
    rows = [r for r in rows if r.rule != OUTPUT_CAP_RULE]
    clusters = dedup(rows) if "dedup" in chain else [_single(r, str(r.id)) for r in rows]
    draft = ReportDraft(chain=list(chain), clusters=clusters)
    if facts.status == "budget_exhausted":
        draft.notes.append(
            "The budget ran out: the agents that had not started were skipped, and this report "
            "covers only what finished."
        )
    if "quorum" in chain:
        quorum(clusters, int(facts.options.get("vote_quorum", 1)))
    if "confidence" in chain:
        confidence(clusters, float(facts.options.get("min_confidence", 0.3)))
    synthesis(draft, facts)  # a report always has text, even when the step is not chained
    if "critic" in chain:
        critic(draft, facts)
    kept = ranked(clusters)
    draft.stats = {
        "raw_findings": len(rows),
        "clusters": len(clusters),
        "kept": len(kept),
        "dropped": len(clusters) - len(kept),
        "by_severity": {s: sum(1 for c in kept if c.severity == s) for s in SEVERITY_RANK},
    }
    if facts.capped_outputs:
        draft.stats["dropped_at_output_limit"] = sum(
            int(r.title.split(" ", 1)[0]) for r in facts.capped_outputs if r.title[:1].isdigit()
        )
    return draft
