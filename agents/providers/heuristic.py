"""The ``heuristic`` provider: the offline default. Deterministic static analysis of the real
target with no network and no language model — and it says so everywhere it shows.

It behaves like a model provider so that every limit is exercised for real: each agent is one
"call" that reserves budget, reports token counts derived from its input and output (about four
characters a token), is priced at a nominal rate, can wait ``latency_ms`` to stand in for a
model's response time, and asks to spawn sub-agents when its scope is too big for one agent.
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any

from agents.analysis import CODE_LENSES, Analysis, analyze_file, vendored_reason
from agents.analysis.ranking import rank_key
from agents.contract import (
    AgentFinding,
    AgentOutput,
    AgentRequest,
    AgentResult,
    ModelStep,
    ProviderError,
    SpawnOut,
    Usage,
)
from agents.docs_analysis import (
    DOC_LENSES,
    DocumentSummary,
    analyze_document,
    summarize_document,
    synthesize,
)
from agents.evaluation.dataset import EvaluationInputError
from agents.evaluation.judge import JUDGE_STEP, judged_item, verdict_output
from agents.evaluation.offline import judge_offline
from agents.judging import offline as ensemble_judge
from agents.judging.answers import verdict_summary
from agents.judging.plan import JUDGE_STEPS
from agents.playbooks import AGENT_MAX_BYTES, AGENT_MAX_FILES, VERIFY_STEP
from agents.tiers import VERDICTS, verify_offline
from agents.wording import count

MODEL = "heuristic-v1"
CHARS_PER_TOKEN = 4
PROMPT_OVERHEAD_TOKENS = 250  # what a scoped system prompt would cost


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


class HeuristicProvider:
    name = "heuristic"
    kind = "heuristic"
    is_llm = False
    label = "Offline analyzer (heuristic, no LLM)"

    def default_model(self) -> str:
        return MODEL

    # -- budget estimate ----------------------------------------------------------------------
    def _scope_chars(self, request: AgentRequest) -> int:
        snapshot = request.snapshot
        files = request.scope.get("files") or []
        if request.scope.get("document"):
            files = [request.scope["document"]]
        sizes = snapshot.manifest.files
        chars = sum(int(sizes[p]["size"]) for p in files if p in sizes)
        chars += len(json.dumps(request.inputs, sort_keys=True)) if request.inputs else 0
        return chars

    def estimate_tokens(self, request: AgentRequest) -> tuple[int, int]:
        """Exact input tokens (the heuristic reads exactly its scope) and the output cap."""
        return _tokens(self._scope_chars(request)) + PROMPT_OVERHEAD_TOKENS, request.max_tokens

    # -- the agent ----------------------------------------------------------------------------
    def run_agent(self, request: AgentRequest) -> AgentResult:
        ctx = request.context
        stored = ctx.replay(0) if ctx else None
        if stored is not None:
            output = AgentOutput.model_validate(stored["output"])
            usage = Usage(**stored["usage"])
            return AgentResult(output=output, usage=usage, model=MODEL, provider=self.name)

        input_tokens, max_output = self.estimate_tokens(request)
        if ctx:
            # Near the end of the budget the call may output less than its cap: what is left.
            max_output = ctx.before_call(
                0, model=MODEL, input_tokens=input_tokens, output_tokens=max_output
            )
        started = time.monotonic()
        try:
            self._simulate_latency(request)
            output = self._analyze(request)
        except Exception:
            if ctx:
                ctx.release_call(0)
            raise
        output, output_tokens = _fit_output(
            output, max_output, by_budget=max_output < request.max_tokens
        )
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        seconds = time.monotonic() - started
        if ctx:
            data = {
                "output": output.model_dump(),
                "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            }
            ctx.after_call(0, ModelStep(MODEL, usage, data, seconds, f"analyze {request.lens}"))
        return AgentResult(output=output, usage=usage, model=MODEL, provider=self.name)

    def _simulate_latency(self, request: AgentRequest) -> None:
        remaining = request.latency_ms / 1000
        while remaining > 0:  # sleep in slices so a cancelled run stops promptly
            time.sleep(min(0.2, remaining))
            remaining -= 0.2
            if request.context and remaining > 0:
                request.context.check_cancelled()

    def _analyze(self, request: AgentRequest) -> AgentOutput:
        scope = request.scope
        if request.step == "synthesize":
            return self._synthesize(request)
        if request.step == JUDGE_STEP:
            return self._judge(request)
        if request.step in JUDGE_STEPS:
            return self._judge_candidates(request)
        if request.step == VERIFY_STEP:
            return self._verify(request)
        if "document" in scope:
            return self._document(request, str(scope["document"]))
        files = [str(p) for p in scope.get("files", [])]
        if not files:
            raise ProviderError("the agent's scope names no files", permanent=True)
        spawn = self._maybe_split(request, files)
        if spawn:
            return AgentOutput(
                summary=f"Scope of {len(files)} files is too big for one agent: split in "
                f"{len(spawn)} parts.",
                spawn=spawn,
            )
        if request.lens not in CODE_LENSES:
            raise ProviderError(f"unknown code lens {request.lens!r}", permanent=True)
        findings: list[AgentFinding] = []
        suppressed: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        for path in files:
            # By path first: the snapshot may have left a vendored folder's files out.
            reason = vendored_reason(path)
            text = "" if reason else request.snapshot.read_text(path)
            reason = reason or vendored_reason(path, text)
            if reason:
                skipped.append({"path": path, "reason": reason})
                continue
            analysis = _analysis(path, text, request.lens)
            findings.extend(_finding(raw.to_dict()) for raw in analysis.findings)
            suppressed.extend(s.to_dict() for s in analysis.suppressed)
        findings.sort(key=_rank)
        summary = (
            f"Offline {request.lens} analysis of {count(len(files) - len(skipped), 'file')}: "
            f"{count(len(findings), 'finding')}."
        )
        if suppressed:
            summary += f" {len(suppressed)} suppressed by # nosec / # noqa markers (listed)."
        if skipped:
            summary += f" {count(len(skipped), 'third-party file')} skipped: " + ", ".join(
                f"{s['path']} ({s['reason']})" for s in skipped[:5]
            )
        data: dict[str, Any] = {}
        if suppressed:
            data["suppressed"] = suppressed
        if skipped:
            data["skipped"] = skipped
        output = AgentOutput(summary=summary[:8000], findings=findings, data=data)
        vendored = {s["path"] for s in skipped}
        own = [p for p in files if p not in vendored]
        tokens = _tokens(len(output.model_dump_json()))
        if tokens > request.max_tokens and request.can_spawn and len(own) >= 2:
            # Too many findings for one answer: hand halves to sub-agents rather than drop any
            # (dropping, with a note, is left for an agent that cannot split further).
            return AgentOutput(
                summary=f"{len(findings)} findings need ~{tokens} output tokens, over the "
                f"{request.max_tokens}-token limit: split in 2 parts.",
                spawn=_halves(
                    own,
                    request.lens,
                    f"{len(findings)} findings exceed the {request.max_tokens}-token output",
                ),
            )
        return output

    def _verify(self, request: AgentRequest) -> AgentOutput:
        """The depth tier offline: each escalated item checked by re-analysing its whole file
        (``agents.tiers.verify_offline``); verdicts in ``data``, no findings of its own."""
        items = list(request.scope.get("items") or [])
        verdicts = verify_offline(items, request.lens, request.snapshot.read_text)
        kinds = [v["verdict"] for v in verdicts]
        summary = f"Re-analysed {count(len(items), 'escalated item')} whole-file: " + ", ".join(
            f"{kinds.count(kind)} {kind}" for kind in VERDICTS
        )
        return AgentOutput(summary=summary, data={"verdicts": verdicts})

    def _judge(self, request: AgentRequest) -> AgentOutput:
        """An evaluation's judge: measurable checks of one item on one dimension."""
        try:
            item, dimension = judged_item(request)
        except EvaluationInputError as exc:
            raise ProviderError(str(exc), permanent=True) from None
        verdict, extra = judge_offline(item, dimension, int(request.scope.get("judge") or 0))
        return verdict_output(request, verdict, extra)

    def _judge_candidates(self, request: AgentRequest) -> AgentOutput:
        """A judged ensemble's judge: the candidates' findings checked against the snapshot."""
        candidates = (request.inputs or {}).get("candidates")
        if not isinstance(candidates, dict) or not candidates:
            raise ProviderError("the judge was given no candidates to judge", permanent=True)
        verdict = ensemble_judge.judge_offline(request.step, candidates, request.snapshot)
        return AgentOutput(
            summary=f"{ensemble_judge.LABEL}: {verdict_summary(verdict)}"[:8000],
            data={**verdict, "judge": ensemble_judge.LABEL},
        )

    def _maybe_split(self, request: AgentRequest, files: list[str]) -> list[SpawnOut]:
        if not request.can_spawn or len(files) < 2:
            return []
        opts = request.inputs.get("options", {}) if request.inputs else {}
        max_files = int(opts.get("agent_max_files", AGENT_MAX_FILES))
        max_bytes = int(opts.get("agent_max_bytes", AGENT_MAX_BYTES))
        sizes = request.snapshot.manifest.files
        total = sum(int(sizes[p]["size"]) for p in files if p in sizes)
        if len(files) <= max_files and total <= max_bytes:
            return []
        return _halves(
            files,
            request.lens,
            f"{len(files)} files / {total} bytes exceed one agent's "
            f"{max_files} files / {max_bytes} bytes",
        )

    def _document(self, request: AgentRequest, path: str) -> AgentOutput:
        text = request.snapshot.read_text(path)
        if request.lens in DOC_LENSES:
            raws = analyze_document(path, text, request.lens)
            findings = [_finding(raw.to_dict()) for raw in raws]
            return AgentOutput(
                summary=(
                    f"Offline {request.lens} review of {path}: {count(len(findings), 'finding')}."
                ),
                findings=findings,
            )
        summary = summarize_document(path, text)
        findings = [
            AgentFinding(
                title=f"Key point: {sentence.text[:180]}",
                detail="An extractive key sentence, ranked by keyword weight.",
                severity="info",
                confidence=0.6,
                path=path,
                line_start=sentence.line,
                line_end=sentence.line,
                evidence=sentence.text[:1000],
                rule="doc.key_point",
            )
            for sentence in summary.key_sentences
        ]
        keywords = ", ".join(term for term, _ in summary.keywords[:6])
        return AgentOutput(
            summary=f"{summary.title}: {summary.word_count} words; keywords: {keywords}.",
            findings=findings,
            data={"document_summary": summary.to_dict()},
        )

    def _synthesize(self, request: AgentRequest) -> AgentOutput:
        raw = request.inputs.get("dependency_outputs", []) if request.inputs else []
        summaries = [
            DocumentSummary.from_dict(item["document_summary"])
            for item in raw
            if isinstance(item, dict) and "document_summary" in item
        ]
        if not summaries:
            raise ProviderError("no document summaries to synthesize", permanent=True)
        synthesis = synthesize(summaries)
        findings = [
            AgentFinding(
                title=f"Shared theme: {theme['term']}",
                detail="Appears in: " + ", ".join(theme.get("documents", [])),
                severity="info",
                confidence=min(1.0, 0.4 + 0.15 * len(theme.get("documents", []))),
                rule="doc.theme",
            )
            for theme in synthesis.to_dict().get("themes", [])[:10]
            if isinstance(theme, dict) and "term" in theme
        ]
        return AgentOutput(
            summary=synthesis.to_markdown()[:8000],
            findings=findings,
            data={"synthesis": synthesis.to_dict()},
        )


# Files up to this size are remembered with their analysis (at most CACHED_ANALYSES of them, so a
# worker holds a few megabytes at most).
CACHED_TEXT_CHARS = 64_000
CACHED_ANALYSES = 64


@functools.lru_cache(maxsize=CACHED_ANALYSES)
def _cached_analysis(path: str, text: str, lens: str) -> Analysis:
    return analyze_file(path, text, lens)


def _analysis(path: str, text: str, lens: str) -> Analysis:
    """``analyze_file`` is deterministic: the agents a worker runs over the same text of the same
    file through the same lens (an ensemble's voters, a re-run) share one analysis, read only."""
    if len(text) > CACHED_TEXT_CHARS:
        return analyze_file(path, text, lens)
    return _cached_analysis(path, text, lens)


def _halves(files: list[str], lens: str, reason: str) -> list[SpawnOut]:
    half = len(files) // 2
    return [
        SpawnOut(scope={"files": part}, why=f"{reason}: part {i + 1} of 2", lens=lens)
        for i, part in enumerate([files[:half], files[half:]])
    ]


def _finding(raw: dict[str, Any]) -> AgentFinding:
    return AgentFinding(
        title=str(raw["title"])[:200],
        detail=str(raw.get("detail", ""))[:4000],
        severity=raw.get("severity", "medium"),
        confidence=float(raw.get("confidence", 0.5)),
        path=str(raw.get("path", ""))[:500],
        line_start=raw.get("line_start"),
        line_end=raw.get("line_end"),
        evidence=str(raw.get("evidence", ""))[:2000],
        rule=str(raw.get("rule", ""))[:100],
        cwe=raw.get("cwe"),
    )


def _rank(f: AgentFinding) -> tuple[int, ...]:
    # One agent has one lens, so this is severity, then CWE weight, then confidence.
    return rank_key("", f.severity, f.cwe, f.confidence)


OUTPUT_CAP_RULE = "meta.output_cap"


def _fit_output(
    output: AgentOutput, max_tokens: int, *, by_budget: bool = False
) -> tuple[AgentOutput, int]:
    """Keep the output within ``max_tokens`` (as a model's would be), so the budget reservation
    (which assumed ``max_tokens``) is an upper bound. The least urgent findings go first, and
    nothing goes silently: one ``meta.output_cap`` finding (which the report's critique reads)
    and ``data["dropped_findings"]`` say how many were dropped and where. ``by_budget``: the
    limit is what was left of the run's budget, not the agent's own cap, and the note says so."""

    def cost(o: AgentOutput) -> int:
        return _tokens(len(o.model_dump_json()))

    tokens = cost(output)
    if tokens <= max_tokens:
        return output, tokens
    findings = sorted(output.findings, key=_rank)
    # Bulky step results go first; the small lists the report needs are kept.
    data = {k: v for k, v in output.data.items() if k in ("skipped", "suppressed")}
    kept = list(findings)
    while True:
        trimmed = _with_drop_note(output, kept, findings[len(kept) :], data, by_budget)
        if cost(trimmed) <= max_tokens or not kept:
            break
        kept.pop()
    if cost(trimmed) > max_tokens and data.pop("suppressed", None) is not None:
        trimmed = _with_drop_note(output, kept, findings[len(kept) :], data, by_budget)
    return trimmed, min(max_tokens, cost(trimmed))


def _with_drop_note(
    output: AgentOutput,
    kept: list[AgentFinding],
    dropped: list[AgentFinding],
    data: dict[str, Any],
    by_budget: bool = False,
) -> AgentOutput:
    if not dropped:
        return output.model_copy(update={"findings": kept, "data": data})
    where: dict[str, list[int]] = {}
    for f in dropped:
        where.setdefault(f.path or "?", []).append(f.line_start or 0)
    listing = "; ".join(f"{p}: lines {', '.join(map(str, sorted(ls)))}" for p, ls in where.items())
    cut_by = "What was left of the run's budget" if by_budget else "The agent's output limit"
    note = AgentFinding(
        title=f"{count(len(dropped), 'finding')} dropped at the output limit",
        detail=f"{cut_by} cut its least urgent findings. Dropped: {listing}"[:4000],
        severity="info",
        confidence=1.0,
        path=next(iter(where), ""),
        rule=OUTPUT_CAP_RULE,
    )
    counts = {p: len(ls) for p, ls in where.items()}
    return output.model_copy(
        update={
            "findings": [*kept, note],
            "summary": f"{output.summary} ({len(dropped)} lower-ranked findings dropped: output "
            "limit reached)"[:8000],
            "data": {**data, "dropped_findings": {"count": len(dropped), "by_path": counts}},
        }
    )
