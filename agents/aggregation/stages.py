"""The aggregation steps. Pure functions over plain data so they are easy to test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.aggregation.clustering import DedupSettings, build_cluster, link_components
from agents.aggregation.coverage import (
    coverage_markdown,
    coverage_note,
    shows_coverage,
    vendored_note,
)
from agents.aggregation.evidence import TextSource, check_location
from agents.aggregation.model_steps import apply_verdicts, parse_verdicts
from agents.aggregation.records import SEVERITY_RANK, Cluster, FindingRow
from agents.aggregation.similarity import Embedder, TfidfEmbedder, embed_or_fallback
from agents.aggregation.text import md_code as _md_code
from agents.aggregation.text import md_escape as _md_escape
from agents.aggregation.text import md_model_quote
from agents.analysis.ranking import LENS_TIER, cwe_from_text, rank_key
from agents.wording import count, noun

AGGREGATION_STEPS: dict[str, str] = {
    "dedup": "Merge findings about the same issue at the same place, however they are worded.",
    "quorum": "Keep a cluster only when enough distinct agents and lenses reported it (voting).",
    "confidence": "Combine the agents' confidences, drop what stays below the threshold, "
    "keep the top K by confidence-weighted votes.",
    "synthesis": "Write the report: overview, ranked findings, themes.",
    "critic": "Check the report: coverage gaps, failed or skipped agents, weak evidence.",
}


@dataclass
class ReportDraft:
    chain: list[str]
    clusters: list[Cluster]
    markdown: str = ""
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    critique: list[str] = field(default_factory=list)
    # What produced it (embedder, thresholds, quorums), so a version can be explained and redone.
    params: dict[str, Any] = field(default_factory=dict)


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
    # The skipped scopes whose subtree ran out of its allowance (the run's budget_split).
    unread_by_allowance: list[str] = field(default_factory=list)
    # Output-limit notes the agents left among their findings (filled by run_chain).
    capped_outputs: list[FindingRow] = field(default_factory=list)
    # The model-written report steps (agents.aggregation.model_steps): the synthesis agent's
    # narrative and who wrote it, the critic agent's verdicts with the cluster keys its ids
    # stood for, and what to say when a step did not run or failed.
    model_narrative: str = ""
    model_narrative_by: str = ""
    model_verdicts: list[dict[str, Any]] = field(default_factory=list)
    model_verdict_keys: dict[str, str] = field(default_factory=dict)
    model_critic_by: str = ""
    report_step_notes: list[str] = field(default_factory=list)
    # Files the agents skipped as third-party code ({"path", "reason"}), from their outputs.
    vendored_files: list[dict[str, Any]] = field(default_factory=list)


def _single(row: FindingRow) -> Cluster:
    """A cluster of one finding (the chain without dedup)."""
    return build_cluster([row])


def dedup(
    rows: list[FindingRow],
    embedder: Embedder | None = None,
    settings: DedupSettings | None = None,
    notes: list[str] | None = None,
    params: dict[str, Any] | None = None,
) -> list[Cluster]:
    """Semantic dedup (see ``agents.aggregation.clustering``); clusters in a stable order.
    ``notes`` receives a fallback notice, ``params`` the name of the embedder actually used."""
    settings = settings or DedupSettings()
    rows = sorted(rows, key=lambda r: (r.path, r.line_start or 0, r.rule, r.id))
    vectors, name, note = embed_or_fallback(
        embedder or TfidfEmbedder(), [f"{r.title}. {r.detail}".strip() for r in rows]
    )
    if note and notes is not None:
        notes.append(note)
    if params is not None:
        params["embedder"] = name
    clusters = [build_cluster(group) for group in link_components(rows, vectors, settings)]
    return sorted(clusters, key=lambda c: (c.path, c.line_start or 0, c.finding_ids[0]))


def check_evidence(rows: list[FindingRow], source: TextSource | None) -> None:
    """Mark each finding's location and quote as found in the snapshot or not."""
    for r in rows:
        r.evidence_status = check_location(source, r.path, r.line_start, r.line_end, r.evidence)


def quorum(clusters: list[Cluster], needed: int, lenses_needed: int = 1) -> None:
    """Support = distinct agents (votes) and distinct lenses; both must reach their quorum."""
    for cluster in clusters:
        if cluster.kept and cluster.votes < needed:
            cluster.kept = False
            cluster.dropped_reason = f"{count(cluster.votes, 'vote')}, quorum is {needed}"
        elif cluster.kept and len(cluster.lenses) < lenses_needed:
            cluster.kept = False
            cluster.dropped_reason = (
                f"{count(len(cluster.lenses), 'lens', 'lenses')}, lens quorum is {lenses_needed}"
            )


def confidence(clusters: list[Cluster], threshold: float) -> None:
    for cluster in clusters:
        cluster.confidence = round(min(1.0, cluster.confidence), 3)
        if cluster.kept and cluster.confidence < threshold:
            cluster.kept = False
            cluster.dropped_reason = f"confidence {cluster.confidence:.2f} < {threshold:.2f}"


# An agent that hit its output limit reports what it dropped as one finding with this rule
# (agents/providers/heuristic.py); the report shows it in the critique, not as an issue.
OUTPUT_CAP_RULE = "meta.output_cap"


def _order(c: Cluster) -> tuple[Any, ...]:
    """Most urgent first. A fabricated location sinks below every checked one, whatever its
    severity; then security before reliability before maintainability, severity, CWE weight
    (injection above weak hashing), support (confidence-weighted votes) and confidence."""
    lens = min(c.lenses, key=lambda name: LENS_TIER.get(name, 3), default="")
    cwe = cwe_from_text(c.detail)
    tier, severity, weight, _ = rank_key(lens, c.severity, cwe, c.confidence)
    return (
        c.fabricated,
        tier,
        severity,
        weight,
        -c.score,
        -c.confidence,
        c.path,
        c.line_start or 0,
        c.key,
    )


def ranked(clusters: list[Cluster]) -> list[Cluster]:
    return sorted((c for c in clusters if c.kept), key=_order)


def top_k(clusters: list[Cluster], k: int) -> None:
    """Keep the ``k`` best kept clusters (0 = all) and number every kept one by rank."""
    for position, cluster in enumerate(ranked(clusters), start=1):
        if k and position > k:
            cluster.kept = False
            cluster.dropped_reason = f"ranked {position}, beyond the top {k}"
        else:
            cluster.rank = position


def _location(c: Cluster) -> str:
    if not c.path:
        return "—"
    if c.line_start and c.line_end and c.line_end != c.line_start:
        return f"{c.path}:{c.line_start}-{c.line_end}"
    return f"{c.path}:{c.line_start}" if c.line_start else c.path


def _support(c: Cluster) -> str:
    return f"{count(c.votes, 'agent')}, {count(len(c.lenses), 'lens', 'lenses')}"


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
        f"- Findings: {count(len(kept), 'distinct issue')} from "
        f"{count(sum(len(c.finding_ids) for c in draft.clusters), 'raw finding')}"
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
        + (f" (+{count(facts.unpriced_calls, 'unpriced call')})" if facts.unpriced_calls else ""),
        f"- Tokens: {facts.tokens.get('input', 0):,} in, {facts.tokens.get('output', 0):,} out",
        "",
    ]
    for note in draft.notes:  # some quote a failed agent's error or a server's answer
        lines += [f"**Note:** {_md_escape(note)}", ""]
    if facts.model_narrative:
        lines += [
            "## Summary",
            "",
            f"*Written by {_md_escape(facts.model_narrative_by)} from the condensed findings "
            "below (not the raw ones); model output: check it against them.*",
            "",
            md_model_quote(facts.model_narrative),
            "",
        ]
    for text in facts.synthesis_texts:  # the plan's synthesis agent: a model, or the heuristic
        lines += ["## Synthesis", "", md_model_quote(text.strip()), ""]
    if kept:
        lines += [
            "## Findings",
            "",
            "| Severity | Finding | Location | Confidence | Support |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in kept[:200]:
            flag = " (location not found in the snapshot)" if c.fabricated else ""
            lines.append(
                f"| {c.severity} | {_md_escape(c.title)}{flag} | {_md_code(_location(c))} | "
                f"{c.confidence:.2f} | {_support(c)} |"
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
    if shows_coverage(facts.playbook, facts.is_llm):
        lines += coverage_markdown()
    draft.markdown = "\n".join(lines)


def _listed(scopes: list[str]) -> str:
    return ", ".join(scopes[:10]) + ("…" if len(scopes) > 10 else "")


def critic(draft: ReportDraft, facts: RunFacts) -> None:
    notes: list[str] = []
    if facts.failed_scopes:
        failed = facts.failed_scopes
        notes.append(f"{count(len(failed), 'agent')} failed; not covered: {_listed(failed)}")
    # Agents an allowance stopped get their own note (what to raise differs), not this one too.
    unread = facts.unread_by_allowance
    if skipped := [s for s in facts.skipped_scopes if s not in set(unread)]:
        were = "was" if len(skipped) == 1 else "were"
        notes.append(
            f"{count(len(skipped), 'agent')} {were} skipped; not covered: {_listed(skipped)}"
        )
    if unread:
        notes.append(f"left unread because their subtree's allowance ran out: {_listed(unread)}")
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
    fabricated = [c for c in draft.clusters if c.fabricated]
    for c in fabricated:
        c.verdict = f"verify: location or quote not found in the snapshot ({c.evidence_status})"
    if fabricated:
        notes.append(
            f"{count(len(fabricated), 'finding cluster')} "
            f"{noun(len(fabricated), 'cites', 'cite')} a location or quote that is not in the "
            f"snapshot: {noun(len(fabricated), 'it is', 'they are')} ranked last and "
            f"{noun(len(fabricated), 'its', 'their')} confidence cut"
        )
    if weak:
        notes.append(
            f"{count(len(weak), 'serious finding')} {noun(len(weak), 'has', 'have')} low "
            f"confidence: verify {noun(len(weak), 'it', 'them')} by hand"
        )
    capped = [r for r in facts.capped_outputs if r.rule == OUTPUT_CAP_RULE]
    if capped:
        notes.append(
            f"{count(len(capped), 'agent')} hit {noun(len(capped), 'its', 'their')} output limit "
            "and dropped findings: "
            + "; ".join(r.title.split(" ", 1)[0] + f" in {r.path or '?'}" for r in capped[:10])
            + ("…" if len(capped) > 10 else "")
            + " (see each note's detail for the lines)"
        )
    dropped = [c for c in draft.clusters if not c.kept]
    if dropped:
        notes.append(
            f"{count(len(dropped), 'finding cluster')} {noun(len(dropped), 'was', 'were')} "
            "dropped by quorum, confidence or top K"
        )
    challenged = _challenge(ranked(draft.clusters))
    if challenged:
        notes.append(
            f"{count(challenged, 'serious finding')} challenged: a severity resting on one agent's "
            "word, or a near duplicate of another item (see each item's verdict)"
        )
    for c in ranked(draft.clusters):
        if not c.verdict:
            c.verdict = "confirmed by several agents" if c.votes > 1 else "single report"
    notes += _model_critique(ranked(draft.clusters), facts)
    draft.critique = notes
    if notes:
        draft.markdown += "\n## Critique\n\n" + "\n".join(f"- {_md_escape(n)}" for n in notes)
        draft.markdown += "\n"


def _model_critique(kept: list[Cluster], facts: RunFacts) -> list[str]:
    """Attach the critic agent's verdicts to the clusters it was shown (matched by cluster key,
    so a verdict never lands on another item); say what it challenged and what it skipped."""
    notes: list[str] = []
    if not facts.model_verdict_keys:
        return notes
    verdicts, problems = parse_verdicts(facts.model_verdicts, facts.model_verdict_keys)
    challenged = apply_verdicts(kept, verdicts)
    notes.append(
        f"The critic agent ({facts.model_critic_by}) judged {count(len(verdicts), 'serious item')} "
        f"and challenged {challenged}"
    )
    return notes + problems[:5]


# Lines apart within which two kept clusters of the same file and weakness look like one issue.
NEAR_LINES = 5


def _challenge(kept: list[Cluster]) -> int:
    """The critic's questions to every high and critical item, beyond the evidence check: is
    the severity more than one agent's word, and is it a duplicate of an item ranked above it
    (same file, a few lines apart, same CWE or rule family)? Returns how many it challenged."""
    challenged = 0
    seen: list[Cluster] = []
    for c in kept:
        if SEVERITY_RANK.get(c.severity, 0) < 3 or c.verdict:
            seen.append(c)
            continue
        twin = next((o for o in seen if _near_duplicate(o, c)), None)
        if twin is not None:
            c.verdict = f"possible duplicate of item {twin.rank or '?'} ({twin.title[:80]})"
            challenged += 1
        elif c.severity == "critical" and c.votes == 1 and len(c.lenses) == 1:
            c.verdict = "verify the severity: critical on one agent's word"
            challenged += 1
        seen.append(c)
    return challenged


def _near_duplicate(a: Cluster, b: Cluster) -> bool:
    if a.path != b.path or not a.path or a.line_start is None or b.line_start is None:
        return False
    if abs(a.line_start - b.line_start) > NEAR_LINES:
        return False
    same_cwe = (cwe_from_text(a.detail) or -1) == (cwe_from_text(b.detail) or -2)
    return same_cwe or a.rule == b.rule


# Tunables: name → (type, default, lowest, highest).
TUNABLES: dict[str, tuple[type, float, float, float]] = {
    "dedup_threshold": (float, DedupSettings.threshold, 0.0, 1.0),
    "line_window": (int, DedupSettings.line_window, 0, 100_000),
    "vote_quorum": (int, 1, 1, 100_000),
    "lens_quorum": (int, 1, 1, 1_000),
    "min_confidence": (float, 0.3, 0.0, 1.0),
    "top_k": (int, 0, 0, 1_000_000),
}


def tunables(options: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The chain's tunables from the playbook options. ``--set`` lets any value through, and a
    bad one must not leave the run stuck in aggregating: it falls back to the default and the
    report's notes say so."""
    values: dict[str, Any] = {}
    for name, (kind, default, low, high) in TUNABLES.items():
        raw = options.get(name, default)
        try:
            value = kind(raw)
            if isinstance(raw, bool) or not low <= value <= high:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            notes.append(f"Option {name}={raw!r} is not valid; used the default {default}.")
            value = kind(default)
        values[name] = value
    return values


def unknown_steps(unknown: list[str]) -> str:
    """The refusal of a chain naming steps that do not exist (the launch form says it too)."""
    return f"Unknown aggregation {noun(len(unknown), 'step')}: {', '.join(unknown)}."


def run_chain(
    rows: list[FindingRow],
    facts: RunFacts,
    chain: list[str],
    embedder: Embedder | None = None,
    source: TextSource | None = None,
) -> ReportDraft:
    """``source`` is the run's snapshot (for the evidence check); ``embedder`` the similarity
    used by dedup (TF-IDF when None). Tunables come from ``facts.options``: dedup_threshold,
    line_window, vote_quorum, lens_quorum, min_confidence, top_k."""
    unknown = [step for step in chain if step not in AGGREGATION_STEPS]
    if unknown:
        raise ValueError(unknown_steps(unknown))
    facts.capped_outputs = [r for r in rows if r.rule == OUTPUT_CAP_RULE]
    rows = [r for r in rows if r.rule != OUTPUT_CAP_RULE]
    options = facts.options
    check_evidence(rows, source)
    notes: list[str] = []
    params: dict[str, Any] = {
        "embedder": None,
        **tunables(options, notes),
        "evidence_checked": source is not None,
    }
    dedup_settings = DedupSettings(params["dedup_threshold"], params["line_window"])
    if "dedup" in chain:
        clusters = dedup(rows, embedder, dedup_settings, notes, params)
    else:
        clusters = [_single(r) for r in sorted(rows, key=lambda r: r.id)]
    draft = ReportDraft(chain=list(chain), clusters=clusters, notes=notes, params=params)
    if facts.status == "budget_exhausted":
        draft.notes.append(
            "The budget ran out: the agents that had not started were skipped, and this report "
            "covers only what finished."
        )
    if "quorum" in chain:
        quorum(clusters, params["vote_quorum"], params["lens_quorum"])
    if "confidence" in chain:
        confidence(clusters, params["min_confidence"])
        top_k(clusters, params["top_k"])
    else:
        top_k(clusters, 0)
    draft.notes += facts.report_step_notes  # a report agent that failed or was skipped
    vendored = vendored_note(facts.vendored_files)
    if vendored:
        draft.notes.append(vendored)
    synthesis(draft, facts)  # a report always has text, even when the step is not chained
    if shows_coverage(facts.playbook, facts.is_llm):
        draft.notes.append(coverage_note())  # after synthesis: its text has the full section
    if "critic" in chain:
        critic(draft, facts)
    kept = ranked(clusters)
    draft.stats = {
        "raw_findings": len(rows),
        "clusters": len(clusters),
        "kept": len(kept),
        "dropped": len(clusters) - len(kept),
        "by_severity": {s: sum(1 for c in kept if c.severity == s) for s in SEVERITY_RANK},
        "fabricated": sum(1 for c in clusters if c.fabricated),
    }
    if facts.capped_outputs:
        draft.stats["dropped_at_output_limit"] = sum(
            int(r.title.split(" ", 1)[0]) for r in facts.capped_outputs if r.title[:1].isdigit()
        )
    return draft
