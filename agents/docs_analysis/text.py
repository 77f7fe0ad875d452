"""Parsing shared by every lens: markdown blocks, masked prose, sentences, words, readability.

A document is split into ``Block``s (heading, paragraph, list item, table, code). Each block keeps
its raw text (lines joined with ``\\n``) and a *prose* copy of the same length in which markdown
syntax, inline code, URLs and HTML are blanked out. Because both copies have identical offsets, a
regex match on either maps back to an exact line with ``Block.line_at``.

Inputs are capped at ``MAX_CHARS`` so a huge file costs bounded work, and text that looks binary
parses to an empty document instead of producing garbage findings.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import cached_property

MAX_CHARS = 2_000_000

_FENCE_RE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_RE = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_TABLE_RE = re.compile(r"^\s*\|")
_QUOTE_RE = re.compile(r"^\s*>\s?")

_MASKS = (
    re.compile(r"`[^`\n]*`"),  # inline code is not prose
    re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)"),  # images
    re.compile(r"\]\([^)\n]*\)"),  # link targets (the link text stays)
    re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+"),  # bare URLs
    re.compile(r"<[^>\n]{1,300}>"),  # HTML tags
    re.compile(r"\*\*|__|[*\[]"),  # emphasis and link brackets
)
WORD_RE = re.compile("[A-Za-z0-9][A-Za-z0-9'\u2019-]*")
_ABBREVIATION_TEXT = "e.g i.e etc vs dr mr mrs ms inc ltd co no approx fig al st jr sr cf"
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_BOUNDARY_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9]|\s*$)")


def blank(segment: str) -> str:
    """Replace every character but newlines with a space, keeping offsets intact."""
    return "".join("\n" if ch == "\n" else " " for ch in segment)


def mask_prose(raw: str) -> str:
    """Return ``raw`` with non-prose markdown blanked; same length as ``raw``."""
    text = raw
    for pattern in _MASKS:
        text = pattern.sub(lambda m: blank(m.group()), text)
    return text


def prepare(text: str | bytes) -> str:
    """Decode, cap at ``MAX_CHARS`` and normalise newlines. Never raises."""
    if isinstance(text, bytes):
        text = text[: MAX_CHARS * 4].decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        text = str(text)
    return text[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n")


def is_binaryish(text: str) -> bool:
    """True when the start of ``text`` looks like binary data rather than prose."""
    sample = text[:8192]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    odd = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\n\f") or ch == "\ufffd")
    return odd > len(sample) * 0.1


def words(text: str) -> list[str]:
    """Word tokens (letters/digits with inner apostrophes or hyphens), in order."""
    return WORD_RE.findall(text)


def syllables(word: str) -> int:
    """Heuristic English syllable count (vowel groups, silent final e); at least 1."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if len(w) <= 3:
        return 1
    w = re.sub(r"(?:[^laeiouy]es|[^laeiouy]ed|[^laeiouy]e)$", lambda m: m.group()[0], w)
    w = re.sub(r"^y", "", w)
    return max(1, len(re.findall(r"[aeiouy]+", w)))


def flesch(word_list: list[str], sentence_count: int) -> float | None:
    """Flesch reading ease (higher is easier; below 30 is very hard), or None without words."""
    if not word_list:
        return None
    sentences = max(1, sentence_count)
    syl = sum(syllables(w) for w in word_list)
    score = 206.835 - 1.015 * (len(word_list) / sentences) - 84.6 * (syl / len(word_list))
    return round(score, 1)


@dataclass(frozen=True)
class Block:
    """A run of lines of one kind. ``raw`` and ``prose`` have identical length and offsets."""

    kind: str  # "heading" | "paragraph" | "list" | "table" | "code"
    line_start: int
    raw: str
    prose: str
    level: int = 0  # heading level, 0 for other blocks

    @property
    def line_end(self) -> int:
        return self.line_start + self.raw.count("\n")

    @cached_property
    def _newlines(self) -> list[int]:
        return [i for i, ch in enumerate(self.raw) if ch == "\n"]

    def line_at(self, offset: int) -> int:
        """1-based document line holding character ``offset`` of this block."""
        # Bisect over cached newline offsets: counting per call is quadratic on huge blocks.
        return self.line_start + bisect.bisect_left(self._newlines, max(0, offset))


@dataclass(frozen=True)
class Sentence:
    """A sentence of a prose block: normalised text plus its exact line span."""

    text: str
    block: Block
    start: int
    end: int

    @property
    def line_start(self) -> int:
        return self.block.line_at(self.start)

    @property
    def line_end(self) -> int:
        return self.block.line_at(max(self.start, self.end - 1))

    @property
    def raw(self) -> str:
        """The unmasked source of this sentence (keeps links, so citations are visible)."""
        return self.block.raw[self.start : self.end]


def _new_block(kind: str, line_no: int, lines: list[str], level: int = 0) -> Block:
    raw = "\n".join(lines)
    if kind == "code":
        return Block(kind, line_no, raw, blank(raw), level)
    prose = raw
    if kind == "heading":
        prose = _HEADING_RE.sub(lambda m: " " * m.start(2) + m.group(2), raw)
        prose = prose.ljust(len(raw))
    else:
        # Blank list/quote markers line by line so offsets stay aligned.
        prose = "\n".join(
            _QUOTE_RE.sub(lambda m: blank(m.group()), _LIST_RE.sub(lambda m: blank(m.group()), ln))
            for ln in lines
        )
    return Block(kind, line_no, raw, mask_prose(prose), level)


def parse_blocks(lines: list[str]) -> list[Block]:
    """Split markdown-ish lines into blocks; unterminated code fences run to the end."""
    blocks: list[Block] = []
    buf: list[str] = []
    kind = ""
    start = 0

    def flush() -> None:
        nonlocal buf, kind
        if buf:
            blocks.append(_new_block(kind, start, buf))
        buf, kind = [], ""

    in_fence = False
    for idx, line in enumerate(lines, start=1):
        if in_fence:
            buf.append(line)
            if _FENCE_RE.match(line):
                in_fence = False
                flush()
            continue
        if _FENCE_RE.match(line):
            flush()
            in_fence, kind, start, buf = True, "code", idx, [line]
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            flush()
            blocks.append(_new_block("heading", idx, [line], len(heading.group(1))))
            continue
        if not line.strip():
            flush()
            continue
        line_kind = "table" if _TABLE_RE.match(line) else "list" if _LIST_RE.match(line) else ""
        if line_kind == "list" or (line_kind == "table" and kind != "table") or not buf:
            flush()
            kind, start, buf = line_kind or "paragraph", idx, [line]
        else:
            buf.append(line)
    flush()
    return blocks


def split_sentences(block: Block) -> list[Sentence]:
    """Sentences of a prose block, using the masked text; abbreviations do not end a sentence."""
    text = block.prose
    out: list[Sentence] = []
    pos = 0

    def emit(end: int) -> None:
        segment = text[pos:end]
        stripped = segment.strip()
        if words(stripped):
            lead = len(segment) - len(segment.lstrip())
            start = pos + lead
            out.append(Sentence(" ".join(stripped.split()), block, start, start + len(stripped)))

    for match in _BOUNDARY_RE.finditer(text):
        before = text[pos : match.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        emit(match.end())
        pos = match.end()
    emit(len(text))
    return out


@dataclass
class ParsedDocument:
    """A prepared document with lazily computed views. Construct with ``ParsedDocument.parse``."""

    path: str
    text: str
    binary: bool
    lines: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @classmethod
    def parse(cls, path: str, text: str | bytes) -> ParsedDocument:
        prepared = prepare(text)
        binary = is_binaryish(prepared)
        if binary or not prepared.strip():
            return cls(path=str(path), text=prepared, binary=binary)
        lines = prepared.split("\n")
        return cls(str(path), prepared, False, lines, parse_blocks(lines))

    @cached_property
    def prose_blocks(self) -> list[Block]:
        """Paragraphs and list items: the blocks that read as running text."""
        return [b for b in self.blocks if b.kind in ("paragraph", "list")]

    @cached_property
    def sentences(self) -> list[Sentence]:
        return [s for b in self.prose_blocks for s in split_sentences(b)]

    @cached_property
    def headings(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "heading"]

    def sections(self) -> list[list[Block]]:
        """Blocks grouped by heading: each group starts at a heading (or the document start)."""
        groups: list[list[Block]] = [[]]
        for block in self.blocks:
            if block.kind == "heading":
                groups.append([])
            groups[-1].append(block)
        return [g for g in groups if g]

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def evidence(self, start: int, end: int | None = None) -> str:
        """Whitespace-collapsed source lines ``start..end``, at most 300 characters."""
        end = start if end is None else end
        # Slice before collapsing whitespace so a 2 MB single-line document stays cheap.
        span = range(start, min(end, start + 5) + 1)
        joined = " ".join(self.line(n)[:600].strip() for n in span)
        return " ".join(joined.split())[:300]
