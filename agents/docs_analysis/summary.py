"""Extractive, statistics-only summary of one document (``summarize_document``).

Keywords are term frequencies over non-stopword tokens, lightly normalised (plural ``-s``/``-ies``)
so "backups" and "backup" count together across documents. Key sentences are the three with the
highest keyword density, returned in document order. Everything is deterministic.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from agents.docs_analysis.text import ParsedDocument, flesch, words
from agents.docs_analysis.types import DocumentSummary, KeySentence

TOP_KEYWORDS = 10
TOP_SENTENCES = 3
KEY_SENTENCE_MAX_CHARS = 300

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each either else ever every few for from further get gets got
    had hadn't has hasn't have haven't having he her here hers herself him himself his how however
    i if in into is isn't it it's its itself just last let like made make makes many may me might
    more most much must mustn't my myself need needs new next no nor not now of off often on once
    one only or other others our ours ourselves out over own per rather same shall she should
    shouldn't since so some still such than that that's the their theirs them themselves then
    there there's these they this those though through thus to too two under until up upon us use
    used uses using very via was wasn't we well were weren't what when where whether which while
    who whom whose why will with within without won't would wouldn't yes yet you your yours
    yourself yourselves across among around already another back became become becomes come does
    each even first going good however instead less lot many means see seen take taken three way
    ways week weeks day days time times year years e.g i.e etc"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def normalize_term(token: str) -> str | None:
    """Lower-case keyword form of ``token``, or None when it is not keyword material."""
    term = token.lower().strip("'\u2019-")
    if term.endswith(("'s", "\u2019s")):
        term = term[:-2]
    if len(term) < 3 or term in STOPWORDS or not re.fullmatch(r"[a-z][a-z-]*", term):
        return None
    if len(term) > 4 and term.endswith("ies"):
        term = term[:-3] + "y"
    elif len(term) > 4 and term.endswith(("sses", "xes", "ches", "shes", "oes")):
        term = term[:-2]
    elif len(term) > 3 and term.endswith("s") and not term.endswith(("ss", "us", "is")):
        term = term[:-1]
    return None if term in STOPWORDS else term


def _title(doc: ParsedDocument) -> str:
    for block in doc.headings:
        text = " ".join(block.prose.split())
        if text:
            return text[:200]
    for line in doc.lines:
        if line.strip():
            return " ".join(line.split())[:200]
    return ""


def summarize_document(path: str, text: str) -> DocumentSummary:
    """Summarise one document: title, counts, top keywords, 3 key sentences, reading ease.

    Never raises on empty, binary-looking or huge input: binary text yields an empty summary and
    only the first 2 MB are read.
    """
    doc = ParsedDocument.parse(path, text)
    if not doc.blocks:
        return DocumentSummary(path=str(path), title="", word_count=0, sentence_count=0)
    text_blocks = [b for b in doc.blocks if b.kind != "code"]
    all_words = [w for b in text_blocks for w in words(b.prose)]
    counts: Counter[str] = Counter()
    for token in all_words:
        term = normalize_term(token)
        if term:
            counts[term] += 1
    # Stable tie-breaking: highest count first, then alphabetical.
    keywords = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_KEYWORDS]
    weight = dict(keywords)
    sentences = doc.sentences
    scored: list[tuple[float, int, int]] = []
    for index, sent in enumerate(sentences):
        tokens = words(sent.text)
        if len(tokens) < 4:
            continue
        hits = sum(weight.get(normalize_term(t) or "", 0) for t in tokens)
        # Divide by sqrt(length) so long sentences do not win just by being long.
        scored.append((hits / math.sqrt(len(tokens)), sent.line_start, index))
    best = sorted(scored, key=lambda s: (-s[0], s[1], s[2]))[:TOP_SENTENCES]
    chosen = sorted(best, key=lambda s: s[2])
    key_sentences = [
        KeySentence(line=sentences[i].line_start, text=sentences[i].text[:KEY_SENTENCE_MAX_CHARS])
        for score, _, i in chosen
        if score > 0
    ]
    prose_words = [w for b in doc.prose_blocks for w in words(b.prose)]
    return DocumentSummary(
        path=str(path),
        title=_title(doc),
        word_count=len(all_words),
        sentence_count=len(sentences),
        keywords=keywords,
        key_sentences=key_sentences,
        reading_ease=flesch(prose_words, len(sentences)),
    )
