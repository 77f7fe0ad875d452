"""Offline ``heuristic`` document analyzer: real, deterministic text analysis without a model.

Public API:

- ``DOC_LENSES``: lens name -> one-line description of the expert persona it plays.
- ``analyze_document(path, text, lens)``: findings of one lens over one document.
- ``summarize_document(path, text)``: a ``DocumentSummary`` (keywords, key sentences, ...).
- ``synthesize(summaries)``: a ``Synthesis`` of a corpus (themes, digests, outliers).

Everything is stdlib-only, needs no network, never raises on empty, binary-looking or huge text
(only the first 2 MB are analysed), and returns the same output, in the same order, for the same
input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from agents.docs_analysis.base import FindingSink
from agents.docs_analysis.lenses_risk import run_legal, run_security, run_skeptic
from agents.docs_analysis.lenses_style import run_accessibility, run_clarity, run_editor
from agents.docs_analysis.summary import summarize_document
from agents.docs_analysis.synthesis import Digest, Synthesis, Theme, synthesize
from agents.docs_analysis.text import ParsedDocument
from agents.docs_analysis.types import DocumentSummary, KeySentence, RawFinding

__all__ = [
    "DOC_LENSES",
    "Digest",
    "DocumentSummary",
    "KeySentence",
    "RawFinding",
    "Synthesis",
    "Theme",
    "analyze_document",
    "summarize_document",
    "synthesize",
]

DOC_LENSES: Mapping[str, str] = MappingProxyType(
    {
        "editor": "Copy editor: overlong sentences, doubled words, passive voice, long "
        "paragraphs, jargon.",
        "skeptic": "Fact checker: figures and absolute claims with no source nearby.",
        "legal": "Counsel: absolute promises, liability language, personal data without "
        "consent or retention, undefined capitalised terms.",
        "security": "Security reviewer: secrets, credentials in URLs, internal hosts and IPs.",
        "accessibility": "Accessibility reviewer: skipped heading levels, images without alt "
        "text, vague link text.",
        "clarity": "Plain-language reviewer: hard-to-read paragraphs, acronyms used before "
        "their expansion.",
    }
)

_RUNNERS: Mapping[str, Callable[[ParsedDocument, FindingSink], None]] = MappingProxyType(
    {
        "editor": run_editor,
        "skeptic": run_skeptic,
        "legal": run_legal,
        "security": run_security,
        "accessibility": run_accessibility,
        "clarity": run_clarity,
    }
)


def analyze_document(path: str, text: str, lens: str) -> list[RawFinding]:
    """Run one lens over one document and return its findings.

    Findings are sorted by (line_start, line_end, rule, title) and de-duplicated. Raises
    ``ValueError`` for a lens not in ``DOC_LENSES``; never raises because of the text itself.
    """
    name = lens.strip().lower() if isinstance(lens, str) else ""
    runner = _RUNNERS.get(name)
    if runner is None:
        known = ", ".join(sorted(DOC_LENSES))
        raise ValueError(f"unknown document lens {lens!r}; expected one of: {known}")
    doc = ParsedDocument.parse(path, text)
    if not doc.blocks:
        return []
    sink = FindingSink(doc, name)
    runner(doc, sink)
    unique = {(f.line_start, f.line_end, f.rule, f.title, f.evidence): f for f in sink.findings}
    return [unique[key] for key in sorted(unique)]
