"""Corpus synthesis from per-document summaries (``synthesize``), with a markdown rendering.

A *theme* is a keyword in the top keywords of at least two documents. Themes rank by document
frequency, then by total weight (the keyword's share of each document's words, summed, so one
long document cannot dominate), then alphabetically. Documents sharing no theme are *outliers*.
Summaries are processed in path order, so the output does not depend on input order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.docs_analysis.types import DocumentSummary

MIN_THEME_DOCS = 2
MAX_THEMES = 15
GENERATOR_NOTE = (
    "Produced by the offline heuristic analyzer (keyword statistics and extractive sentences), "
    "not by a language model."
)


@dataclass(frozen=True)
class Theme:
    """A keyword shared by several documents, with the documents (sorted by path)."""

    term: str
    document_frequency: int
    weight: float
    documents: list[str]


@dataclass(frozen=True)
class Digest:
    """A one-line digest of one document."""

    path: str
    title: str
    line: str


@dataclass(frozen=True)
class Synthesis:
    """Themes, per-document digests and outliers of a corpus. ``generator`` names the producer."""

    document_count: int
    themes: list[Theme] = field(default_factory=list)
    digests: list[Digest] = field(default_factory=list)
    outliers: list[str] = field(default_factory=list)
    generator: str = "heuristic"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {
            "generator": self.generator,
            "note": GENERATOR_NOTE,
            "document_count": self.document_count,
            "themes": [
                {
                    "term": t.term,
                    "document_frequency": t.document_frequency,
                    "weight": t.weight,
                    "documents": list(t.documents),
                }
                for t in self.themes
            ],
            "digests": [{"path": d.path, "title": d.title, "line": d.line} for d in self.digests],
            "outliers": list(self.outliers),
        }

    def to_markdown(self) -> str:
        """Human-readable report; states plainly that no language model produced it."""
        out = ["# Corpus synthesis", "", f"> {GENERATOR_NOTE}", ""]
        out.append(f"Documents analysed: {self.document_count}.")
        out += ["", "## Shared themes", ""]
        if not self.themes:
            out.append("No keyword is shared by two or more documents.")
        for theme in self.themes:
            docs = ", ".join(f"`{p}`" for p in theme.documents)
            out.append(f"- **{theme.term}** — in {theme.document_frequency} documents: {docs}")
        out += ["", "## Documents", ""]
        if not self.digests:
            out.append("No documents.")
        for digest in self.digests:
            out.append(f"- `{digest.path}` — {digest.line}")
        out += ["", "## Outliers", ""]
        if self.outliers:
            out.append("These documents share no theme with the rest of the corpus:")
            out.append("")
            out += [f"- `{p}`" for p in self.outliers]
        else:
            out.append("None: every document shares at least one theme.")
        return "\n".join(out) + "\n"


def _digest(summary: DocumentSummary) -> Digest:
    title = summary.title or summary.path
    terms = ", ".join(term for term, _ in summary.keywords[:5]) or "no keywords"
    ease = "n/a" if summary.reading_ease is None else f"{summary.reading_ease:.0f}"
    lead = summary.key_sentences[0].text if summary.key_sentences else ""
    if len(lead) > 160:
        lead = lead[:157].rstrip() + "…"
    line = f"{title} ({summary.word_count} words, reading ease {ease}; key terms: {terms})"
    return Digest(summary.path, title, f"{line}. {lead}" if lead else line)


def synthesize(summaries: list[DocumentSummary]) -> Synthesis:
    """Aggregate document summaries into shared themes, digests and outliers. Deterministic."""
    ordered = sorted(summaries, key=lambda s: (s.path, s.title, s.word_count))
    docs_by_term: dict[str, list[str]] = {}
    weight_by_term: dict[str, float] = {}
    for summary in ordered:
        for term, count in summary.keywords:
            paths = docs_by_term.setdefault(term, [])
            if summary.path not in paths:
                paths.append(summary.path)
            share = count / summary.word_count if summary.word_count else 0.0
            weight_by_term[term] = weight_by_term.get(term, 0.0) + share
    shared = [t for t, paths in docs_by_term.items() if len(paths) >= MIN_THEME_DOCS]
    shared.sort(key=lambda t: (-len(docs_by_term[t]), -round(weight_by_term[t], 9), t))
    themes = [
        Theme(t, len(docs_by_term[t]), round(weight_by_term[t], 4), sorted(docs_by_term[t]))
        for t in shared[:MAX_THEMES]
    ]
    # Outliers use every shared term, not just the displayed top themes; a lone document is not
    # an outlier of anything.
    shared_terms = set(shared)
    outliers = [
        s.path
        for s in ordered
        if len(ordered) >= MIN_THEME_DOCS
        and not any(term in shared_terms for term, _ in s.keywords)
    ]
    return Synthesis(
        document_count=len(ordered),
        themes=themes,
        digests=[_digest(s) for s in ordered],
        outliers=sorted(dict.fromkeys(outliers)),
    )
