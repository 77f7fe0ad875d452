"""Value types of the offline document analyzer.

Findings are ``agents.analysis.finding.RawFinding``, shared with the code analyzer.
``DocumentSummary`` is what one document worker hands to the corpus synthesis;
it round-trips through JSON via ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.analysis.finding import SEVERITIES, RawFinding, Severity

__all__ = ["SEVERITIES", "RawFinding", "Severity"]


@dataclass(frozen=True)
class KeySentence:
    """An extracted sentence and the 1-based line it starts on."""

    line: int
    text: str


@dataclass(frozen=True)
class DocumentSummary:
    """Extractive, statistics-based summary of one document.

    ``keywords`` holds up to 10 ``(term, count)`` pairs, highest count first, ties by term.
    ``key_sentences`` holds up to 3 sentences in document order. ``reading_ease`` is the Flesch
    reading ease of the whole prose, or ``None`` when the document has no words.
    """

    path: str
    title: str
    word_count: int
    sentence_count: int
    keywords: list[tuple[str, int]] = field(default_factory=list)
    key_sentences: list[KeySentence] = field(default_factory=list)
    reading_ease: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; ``from_dict(to_dict(s)) == s``."""
        return {
            "path": self.path,
            "title": self.title,
            "word_count": self.word_count,
            "sentence_count": self.sentence_count,
            "keywords": [[term, count] for term, count in self.keywords],
            "key_sentences": [{"line": k.line, "text": k.text} for k in self.key_sentences],
            "reading_ease": self.reading_ease,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentSummary:
        """Inverse of ``to_dict``; tolerates missing optional keys."""
        ease = data.get("reading_ease")
        return cls(
            path=str(data["path"]),
            title=str(data.get("title", "")),
            word_count=int(data.get("word_count", 0)),
            sentence_count=int(data.get("sentence_count", 0)),
            keywords=[(str(t), int(c)) for t, c in data.get("keywords", [])],
            key_sentences=[
                KeySentence(line=int(k["line"]), text=str(k["text"]))
                for k in data.get("key_sentences", [])
            ],
            reading_ease=None if ease is None else float(ease),
        )
