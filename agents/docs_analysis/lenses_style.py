"""Lenses about how a document reads: ``editor``, ``clarity`` and ``accessibility``.

Each ``run_*`` function takes a parsed document and a ``FindingSink`` and adds findings; none
raises on odd input. Thresholds are module constants so reviewers can see and tune them.
"""

from __future__ import annotations

import re

from agents.docs_analysis.base import FindingSink
from agents.docs_analysis.text import ParsedDocument, flesch, split_sentences, words

LONG_SENTENCE_WORDS = 35
LONG_PARAGRAPH_WORDS = 150
JARGON_MIN_HITS = 3
READABILITY_THRESHOLD = 30.0
READABILITY_MIN_WORDS = 20

_REPEAT_RE = re.compile(r"\b([A-Za-z]+)\s+\1\b", re.IGNORECASE)
_REPEAT_OK = frozenset({"that", "had", "is", "bye", "very", "no"})
_IRREGULAR = (
    "done|made|given|taken|seen|known|shown|written|sent|built|kept|held|lost|found|told|"
    "paid|put|set|run|begun|chosen|broken|driven|forgotten|hidden|stolen|frozen"
)
_PASSIVE_RE = re.compile(
    rf"\b(?:am|is|are|was|were|be|been|being)\s+(?:\w+ly\s+)?(?:\w{{3,}}ed|{_IRREGULAR})\b",
    re.IGNORECASE,
)
_JARGON_TEXT = """
    leverage leverages leveraging synergy synergies synergistic paradigm utilize utilise
    utilization holistic seamless seamlessly streamline streamlined actionable bandwidth
    best-of-breed cutting-edge game-changer game-changing disruptive ecosystem scalable
    mission-critical robust empower empowers operationalize operationalise incentivize
    deliverables learnings ideate circle-back move-the-needle low-hanging value-add
    next-generation world-class frictionless omnichannel"""
JARGON = frozenset(_JARGON_TEXT.split())

_IMAGE_RE = re.compile(r"!\[([^\]\n]*)\]\(([^)\n]*)\)")
_IMG_TAG_RE = re.compile(r"<img\b[^>\n]*>", re.IGNORECASE)
_VAGUE_LINK_RE = re.compile(
    r"\[\s*(click here|here|this link|link|read more|more|this)\s*\]\(", re.IGNORECASE
)
_ACRONYM_RE = re.compile(r"\b([A-Z][A-Z0-9]{1,5})s?\b")
_COMMON_ACRONYM_TEXT = """
    OK US USA UK EU UN AM PM ID TV PC PDF URL URLS HTTP HTTPS API APIS FAQ CEO CTO CFO COO
    HTML CSS JSON XML CSV USB CPU GPU RAM IT AI PR HR QA UI UX OS IP TCP DNS SQL SSH SLA VPN
    TODO FYI ASAP NB PS II III IV"""
COMMON_ACRONYMS = frozenset(_COMMON_ACRONYM_TEXT.split())


def run_editor(doc: ParsedDocument, sink: FindingSink) -> None:
    """Overlong sentences, doubled words, passive voice, long paragraphs, jargon density."""
    for sent in doc.sentences:
        count = len(words(sent.text))
        if count > LONG_SENTENCE_WORDS:
            sink.add(
                "long-sentence",
                f"Overlong sentence ({count} words)",
                f"This sentence has {count} words; above {LONG_SENTENCE_WORDS} readers lose the "
                "thread. Split it at a conjunction or move a clause into its own sentence.",
                "low",
                0.85,
                sent.line_start,
                sent.line_end,
            )
        passive = _PASSIVE_RE.search(sent.text)
        if passive:
            sink.add(
                "passive-voice",
                f"Possible passive voice: \u201c{passive.group()}\u201d",
                "Passive constructions hide who acts. If the actor matters, name it and use "
                "the active voice (\u201cthe team rotated the key\u201d, not \u201cthe key was "
                "rotated\u201d).",
                "info",
                0.5,
                sent.line_start,
                sent.line_end,
            )
    for block in doc.prose_blocks:
        for match in _REPEAT_RE.finditer(block.prose):
            word = match.group(1)
            if word.lower() in _REPEAT_OK or not word.isalpha():
                continue
            line = block.line_at(match.start())
            sink.add(
                "repeated-word",
                f"Repeated word \u201c{match.group()}\u201d",
                f"\u201c{word}\u201d appears twice in a row, which is almost always a typo. "
                "Delete one of them.",
                "low",
                0.9,
                line,
                block.line_at(match.end() - 1),
            )
        tokens = words(block.prose)
        if len(tokens) > LONG_PARAGRAPH_WORDS:
            sink.add(
                "long-paragraph",
                f"Very long paragraph ({len(tokens)} words)",
                f"Paragraphs over {LONG_PARAGRAPH_WORDS} words read as a wall of text. Split it "
                "where the topic shifts, or turn parallel items into a list.",
                "low",
                0.75,
                block.line_start,
                block.line_end,
            )
        hits = [t for t in tokens if t.lower() in JARGON]
        if len(hits) >= JARGON_MIN_HITS:
            shown = ", ".join(dict.fromkeys(h.lower() for h in hits))
            sink.add(
                "jargon",
                f"Jargon-dense paragraph ({len(hits)} buzzwords)",
                f"Buzzwords ({shown}) make up {len(hits)} of {len(tokens)} words and say little. "
                "Replace each with the concrete thing it stands for.",
                "low",
                min(0.9, 0.5 + 0.1 * len(hits)),
                block.line_start,
                block.line_end,
            )


def _acronym_definitions(doc: ParsedDocument) -> dict[str, int]:
    """First line where each acronym is expanded: ``Words (ACR)`` or ``ACR (Words...)``."""
    found: dict[str, int] = {}
    for block in doc.blocks:
        if block.kind == "code":
            continue
        for match in re.finditer(r"\(([A-Z][A-Z0-9]{1,5})s?\)", block.prose):
            acr = match.group(1)
            before = words(block.prose[max(0, match.start() - 80) : match.start()])
            initials = "".join(w[0].upper() for w in before[-len(acr) * 2 :])
            if acr[0] in initials:
                found.setdefault(acr, block.line_at(match.start()))
        for match in re.finditer(
            r"\b([A-Z][A-Z0-9]{1,5})s?\s+(?:\(\s*[A-Za-z]|stands for|means)", block.prose
        ):
            found.setdefault(match.group(1), block.line_at(match.start()))
    return found


def run_clarity(doc: ParsedDocument, sink: FindingSink) -> None:
    """Hard-to-read paragraphs (Flesch) and acronyms used before or without expansion."""
    for block in doc.prose_blocks:
        tokens = words(block.prose)
        if len(tokens) < READABILITY_MIN_WORDS:
            continue
        score = flesch(tokens, len(split_sentences(block)))
        if score is not None and score < READABILITY_THRESHOLD:
            sink.add(
                "low-readability",
                f"Hard-to-read paragraph (Flesch reading ease {score:.0f})",
                f"Flesch reading ease is {score:.1f}, below {READABILITY_THRESHOLD:.0f} "
                "(college-graduate level). Use shorter sentences and plainer, shorter words.",
                "low",
                0.65,
                block.line_start,
                block.line_end,
            )
    defined = _acronym_definitions(doc)
    seen: set[str] = set()
    for block in doc.prose_blocks:
        for match in _ACRONYM_RE.finditer(block.prose):
            acr = match.group(1)
            if acr in seen or acr in COMMON_ACRONYMS or sum(c.isalpha() for c in acr) < 2:
                continue
            seen.add(acr)
            line = block.line_at(match.start())
            where = defined.get(acr)
            if where is not None and where <= line:
                continue
            later = f" It is only expanded later, on line {where}." if where else ""
            sink.add(
                "undefined-acronym",
                f"Acronym \u201c{acr}\u201d used before it is defined",
                f"\u201c{acr}\u201d first appears here without its expansion.{later} Spell it "
                f"out at first use, e.g. \u201cFull Name ({acr})\u201d.",
                "low",
                0.6 if where else 0.7,
                line,
            )


def run_accessibility(doc: ParsedDocument, sink: FindingSink) -> None:
    """Skipped heading levels, images without alt text, vague link text."""
    previous = 0
    for heading in doc.headings:
        if previous and heading.level > previous + 1:
            sink.add(
                "heading-skip",
                f"Heading jumps from level {previous} to level {heading.level}",
                "Screen-reader users navigate by heading level; a skipped level suggests a "
                f"missing section. Use a level-{previous + 1} heading here.",
                "low",
                0.9,
                heading.line_start,
            )
        previous = heading.level
    for block in doc.blocks:
        if block.kind == "code":
            continue
        for match in _IMAGE_RE.finditer(block.raw):
            if not match.group(1).strip():
                sink.add(
                    "image-alt",
                    "Image without alt text",
                    "Screen readers announce this image as just its file name. Describe what it "
                    "shows inside the brackets: ![what the image shows](...).",
                    "medium",
                    0.95,
                    block.line_at(match.start()),
                )
        for match in _IMG_TAG_RE.finditer(block.raw):
            if not re.search(r"\balt\s*=\s*[\"'][^\"']+", match.group(), re.IGNORECASE):
                sink.add(
                    "image-alt",
                    "HTML image without alt text",
                    'Add a meaningful alt="..." attribute describing the image.',
                    "medium",
                    0.9,
                    block.line_at(match.start()),
                )
        for match in _VAGUE_LINK_RE.finditer(block.raw):
            sink.add(
                "link-text",
                f"Vague link text \u201c{match.group(1)}\u201d",
                "Link text is read out of context by assistive technology. Describe the "
                "destination instead (\u201cthe incident runbook\u201d, not "
                "\u201cclick here\u201d).",
                "low",
                0.85,
                block.line_at(match.start()),
            )
