"""A stored report version as Markdown, JSON (with provenance) or SARIF 2.1.0.

Input is the plain "report document" built by ``runs.pages.report.report_document``: run, report
(version, chain, params, stats, notes) and clusters, each with its ``members`` (finding, agent,
agent_url, lens, vote, evidence status). Every string in it that came from a model or the target
is untrusted: Markdown escapes it (an address-like word becomes a code span, so no viewer links
it), JSON carries it verbatim as data but escapes ``<``, ``>`` and ``&`` so a file opened in a
browser or pasted into a page stays inert, SARIF carries it as plain ``text`` only, its brackets
escaped so no viewer makes an embedded link of them.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from agents.aggregation.text import md_code, md_escape
from agents.wording import count, noun

FORMATS = {
    "md": ("text/markdown; charset=utf-8", "md"),
    "json": ("application/json", "json"),
    "sarif": ("application/sarif+json", "sarif"),
}
ALIASES = {"markdown": "md"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# SARIF has three result levels; our five severities fold into them.
SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def _location(c: dict[str, Any]) -> str:
    path, start, end = c.get("path") or "", c.get("line_start"), c.get("line_end")
    if not path:
        return "-"
    if start and end and end != start:
        return f"{path}:{start}-{end}"
    return f"{path}:{start}" if start else path


def _escaped_lines(text: str) -> list[str]:
    """Multi-line untrusted text, each line escaped (so paragraphs survive, markup does not)."""
    return [md_escape(line) for line in (text or "").splitlines() if line.strip()]


def to_markdown(doc: dict[str, Any]) -> str:
    run, report = doc["run"], doc["report"]
    kept = [c for c in doc["clusters"] if c.get("kept")]
    lines = [
        f"# Report v{report['version']}: run {run['id']} ({md_escape(run['playbook'])})",
        "",
        f"- Target: {md_escape(run['target'])}",
        f"- Status: {md_escape(run['status'])}",
        f"- Chain: {md_escape(' → '.join(report['chain']))}",
        "- Parameters: "
        + ", ".join(
            f"{md_escape(str(k))}={md_escape(str(v))}"
            for k, v in report["params"].items()
            if k != "model_summary"
        ),
        f"- Findings: {len(kept)} kept of {count(len(doc['clusters']), 'cluster')}",
        "",
    ]
    for note in report.get("notes") or []:
        lines += [f"> {md_escape(str(note))}", ""]
    summary = report["params"].get("model_summary") or {}
    if summary.get("text"):
        lines += [
            "## Summary",
            "",
            f"Written by {md_escape(str(summary.get('by', '')))} (model output):",
            "",
            *_escaped_lines(str(summary["text"])),
            "",
        ]
    lines += ["## Findings", ""]
    if not kept:
        lines += ["No finding passed the aggregation chain.", ""]
    for c in kept:
        flag = " (location not found in the snapshot)" if c.get("fabricated") else ""
        lines += [
            f"### {c.get('rank') or '-'}. {md_escape(c['title'])}{flag}",
            "",
            f"- Cluster: {md_code(c['key'])}, severity {md_escape(c['severity'])}, "
            f"confidence {c['confidence']:.2f}, score {c.get('score', 0):.2f}",
            f"- Location: {md_code(_location(c))}, evidence {md_escape(c['evidence_status'])}",
            f"- Support: {count(c['votes'], 'agent')}, "
            f"{noun(len(c['lenses']), 'lens', 'lenses')} {md_escape(', '.join(c['lenses']))}",
            f"- Verdict: {md_escape(c.get('verdict') or '-')}",
            f"- Confirmed by: {_tier(c)}",
            "",
            *_escaped_lines(c.get("detail") or ""),
            "",
            "| Finding | Agent | Lens | Vote | Confidence | Evidence |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for m in c["members"]:
            agent = f"[agent {m['task_id']}]({_url(m.get('agent_url', ''))})"
            lines.append(
                f"| #{m['finding_id']} {md_escape(m['title'])} | {agent} | "
                f"{md_escape(m['lens'])} | {'yes' if m['vote'] else 'repeat'} | "
                f"{m['confidence']:.2f} | {md_escape(m['evidence_status'])} |"
            )
        lines.append("")
    lines += _rejected_by_depth(doc.get("rejected_by_depth") or [])
    return "\n".join(lines)


def _tier(c: dict[str, Any]) -> str:
    """Which tier confirmed a cluster (tiered models), with the depth model and its reason."""
    if c.get("confirmed_by") != "depth":
        escalated = [m for m in c.get("members", []) if m.get("verdict") == "escalated"]
        return "breadth tier" + (" (escalated, no depth verdict)" if escalated else "")
    m = next(m for m in c["members"] if m.get("verdict") in ("confirmed", "corrected"))
    model = f", {md_escape(str(m.get('depth_model') or ''))}" if m.get("depth_model") else ""
    return f"depth tier ({m['verdict']}{model}): {md_escape(str(m.get('verdict_reason') or ''))}"


def _rejected_by_depth(rejected: list[dict[str, Any]]) -> list[str]:
    if not rejected:
        return []
    lines = ["## Rejected by the depth tier", ""]
    for r in rejected:
        lines.append(
            f"- #{r['finding_id']} {md_escape(r['title'])} ({md_escape(r['severity'])}) at "
            f"{md_code(_location(r))}: {md_escape(str(r.get('reason') or ''))}"
        )
    return [*lines, ""]


def _url(url: str) -> str:
    """Our own URLs (built by ``reverse``), still percent-encoded so no character can end the
    link early."""
    return quote(url, safe=":/?=&#")


def _inert_json(data: Any) -> str:
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def to_json(doc: dict[str, Any]) -> str:
    return _inert_json(doc)


def _rule_id(c: dict[str, Any]) -> str:
    if c.get("rule"):
        return str(c["rule"])
    slug = re.sub(r"[^a-z0-9]+", "-", c["title"].lower()).strip("-")[:60]
    return f"harness/{slug or 'finding'}"


def _plain(text: str) -> str:
    """Untrusted text as a SARIF plain-text message: one line, and ``[``, ``]`` and ``\\``
    backslash-escaped, because viewers render ``[text](target)`` in a message as a link
    (SARIF 2.1.0 §3.11.6, embedded links) and unescape exactly these three."""
    return re.sub(r"([\\\[\]])", r"\\\1", " ".join((text or "").split()))


def _artifact_uri(path: str) -> str:
    """A finding's path (a model may name any) as a URI reference relative to the source root:
    percent-encoded (so ``https:`` is no scheme) and without leading slashes (so ``//host`` is
    no host and ``/etc`` no absolute path)."""
    return quote(path.lstrip("/\\"))


def to_sarif(doc: dict[str, Any]) -> dict[str, Any]:
    """Kept clusters that point at a file, one result each; rules from their rule ids."""
    run, report = doc["run"], doc["report"]
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for c in doc["clusters"]:
        if not c.get("kept") or not c.get("path"):
            continue
        rule_id = _rule_id(c)
        if rule_id not in rules:
            rules[rule_id] = {
                "id": rule_id,
                "shortDescription": {"text": _plain(c["title"])[:200] or rule_id},
            }
        region: dict[str, Any] = {}
        if c.get("line_start"):
            region["startLine"] = int(c["line_start"])
            region["endLine"] = max(int(c["line_start"]), int(c.get("line_end") or 0))
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": _artifact_uri(c["path"]), "uriBaseId": "SRCROOT"}
        }
        if region:
            physical["region"] = region
        results.append(
            {
                "ruleId": rule_id,
                "ruleIndex": list(rules).index(rule_id),
                "level": SARIF_LEVEL.get(c["severity"], "note"),
                "message": {"text": _plain(f"{c['title']}. {c.get('detail') or ''}")[:2000]},
                "locations": [{"physicalLocation": physical}],
                "partialFingerprints": {"harnessCluster/v1": c["key"]},
                "properties": {
                    "severity": c["severity"],
                    "confidence": c["confidence"],
                    "score": c.get("score", 0),
                    "rank": c.get("rank", 0),
                    "votes": c["votes"],
                    "lenses": c["lenses"],
                    "evidenceStatus": c["evidence_status"],
                    "verdict": c.get("verdict", ""),
                    "confirmedBy": c.get("confirmed_by", "breadth"),
                    "findings": [
                        {
                            "findingId": m["finding_id"],
                            "taskId": m["task_id"],
                            "agentUrl": m.get("agent_url", ""),
                            "lens": m["lens"],
                            "vote": m["vote"],
                            "tier": m.get("tier", "breadth"),
                            "tierVerdict": m.get("verdict", ""),
                        }
                        for m in c["members"]
                    ],
                },
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "Agent Harness",
                        "rules": list(rules.values()),
                    }
                },
                "automationDetails": {"id": f"agent-harness/run-{run['id']}/v{report['version']}"},
                "originalUriBaseIds": {"SRCROOT": {"description": {"text": _plain(run["target"])}}},
                "results": results,
                "properties": {
                    "playbook": run["playbook"],
                    "chain": report["chain"],
                    "params": report["params"],
                },
            }
        ],
    }


def export(doc: dict[str, Any], fmt: str) -> str:
    fmt = ALIASES.get(fmt, fmt)
    if fmt == "md":
        return to_markdown(doc)
    if fmt == "json":
        return to_json(doc)
    if fmt == "sarif":
        return _inert_json(to_sarif(doc))
    raise ValueError(f"Unknown export format {fmt!r} (md, json or sarif)")
