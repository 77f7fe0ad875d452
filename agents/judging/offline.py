"""The offline judge of a judged ensemble (the heuristic provider's; not a language model).

It judges for real and deterministically: every finding of a candidate is checked against the
snapshot (``agents.aggregation.evidence``: is the quote at the cited file and lines?) and
weighed by its severity. A supported finding (its quote verified, or its location real when it
quotes nothing) adds its weight, half for a bare location; an unsupported one (a file, line or
quote that is not there) takes its weight away. Each candidate's merit is computed alone, so a
pair judged in either order gives the same winner (or a tie in both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.aggregation.evidence import FABRICATED, TextSource, check_location
from agents.judging.plan import PAIR_STEP
from agents.wording import count

SEVERITY_WEIGHT = {"critical": 4.0, "high": 3.0, "medium": 2.0, "low": 1.0, "info": 0.5}
LABEL = "offline judge (heuristic checks, not an LLM)"


@dataclass(frozen=True)
class Merit:
    score: float
    verified: int
    located: int
    unsupported: int
    findings: int

    def describe(self) -> str:
        return (
            f"merit {self.score:g} from {count(self.findings, 'finding')}: "
            f"{self.verified} with their quote found, {self.located} located without a quote, "
            f"{self.unsupported} unsupported"
        )


def merit(candidate: dict[str, Any], source: TextSource | None) -> Merit:
    score, verified, located, unsupported = 0.0, 0, 0, 0
    # The agents' own notes (``meta.*``: findings dropped at the output limit) claim nothing.
    findings = [
        f
        for f in candidate.get("findings") or []
        if isinstance(f, dict) and not str(f.get("rule") or "").startswith("meta.")
    ]
    for finding in findings:
        weight = SEVERITY_WEIGHT.get(str(finding.get("severity")), 1.0)
        status = check_location(
            source,
            str(finding.get("path") or ""),
            finding.get("line_start"),
            finding.get("line_end"),
            str(finding.get("evidence") or ""),
        )
        if status == "verified":
            score, verified = score + weight, verified + 1
        elif status == "located":
            score, located = score + weight / 2, located + 1
        elif status in FABRICATED:
            score, unsupported = score - weight, unsupported + 1
    return Merit(round(score, 3), verified, located, unsupported, len(findings))


def judge_offline(
    step: str, candidates: dict[str, Any], source: TextSource | None
) -> dict[str, Any]:
    """The verdict (the shape ``answers`` validates, plus the merits that decided it)."""
    if step == PAIR_STEP:
        a, b = merit(candidates.get("A") or {}, source), merit(candidates.get("B") or {}, source)
        winner = "A" if a.score > b.score else "B" if b.score > a.score else "tie"
        reason = f"A: {a.describe()}; B: {b.describe()}."
        return {"winner": winner, "reason": reason, "merits": {"A": a.score, "B": b.score}}
    one = merit(candidates.get("candidate") or {}, source)
    supported = one.verified + one.located
    checked = supported + one.unsupported
    # Precision (how much of what it claims holds) decides up to 2 points, the weight of what
    # holds up to 2 more, over a floor of 1: an empty answer scores 1, never a middle grade.
    precision = supported / checked if checked else 0.0
    score = 1 + round(2 * precision) + min(2, int(max(0.0, one.score) // 5))
    return {"score": score, "reason": f"{one.describe()}.", "merits": {"candidate": one.score}}
