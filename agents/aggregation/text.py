"""Untrusted text (model output, target paths, finding titles) made inert in Markdown.

Escaping Markdown's punctuation stops CommonMark's links, images, autolinks and raw HTML, but not
what viewers link on their own: GitHub's autolinks (``https://…``, ``www.…``, ``a@b.c``) and
linkify (any ``name.tld``) work on plain text, backslashes or not. So a word of untrusted text
that looks like an address (a scheme, ``//``, ``www.``, ``@`` or a dotted name) is written as a
code span, where no viewer links anything: the URL stays readable, as text, and never live.
"""

from __future__ import annotations

import re

_MD_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")
# A word a viewer could make a link of, or whose scheme a browser would follow: any scheme
# (``https:``, ``javascript:``, ``data:``, ``mailto:``…), ``//``, or a dotted name (``www.x``,
# ``evil.example``, ``a@b.co``, also ``views.py``: harmless as code). Case-insensitive.
_LINKISH = re.compile(r"[a-z][a-z0-9+.\-]*:[^\s]|//|\\\\|\w\.[^\W\d_]{2}|@", re.IGNORECASE)
_WORDS = re.compile(r"(\s+)")


def _code_span(word: str, pipes: bool) -> str:
    """``word`` (no whitespace) as one code span, backticks and all: the fence is longer than
    any run of backticks inside it. ``pipes``: escape ``|`` for a GFM table cell (inside a cell
    the escape is undone before the span is read)."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", word)), default=0) + 1)
    pad = " " if word.startswith("`") or word.endswith("`") else ""
    if pipes:
        word = word.replace("|", "\\|")
    return f"{fence}{pad}{word}{pad}{fence}"


def _inert_words(line: str, escape: re.Pattern[str], pipes: bool) -> str:
    """Each word of ``line`` either as a code span (it looks like an address or holds a
    backtick) or with ``escape``'s characters backslash-escaped. Whitespace is kept."""
    out = []
    for part in _WORDS.split(line):
        if not part or part.isspace():
            out.append(part)
        elif "`" in part or _LINKISH.search(part):
            out.append(_code_span(part, pipes))
        else:
            out.append(escape.sub(r"\\\1", part))
    return "".join(out)


def md_escape(text: str) -> str:
    """Untrusted text (target names, paths, titles) as literal Markdown text on one line: every
    Markdown punctuation character backslash-escaped, so ``[x](https:evil)`` never becomes a link
    and a pipe never splits a table row, and every address-like word a code span."""
    return _inert_words(" ".join(text.split()), _MD_PUNCTUATION, pipes=True)


def md_code(text: str) -> str:
    """Untrusted text as an inline code span (backslashes do not escape inside one, so a
    backtick in the text is replaced rather than allowed to close the span)."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


# What model prose may not use: links and images ([ ] !), autolinks and HTML (< > and entities
# with &), tables (|), headings (#), backslash tricks. Emphasis and lists stay.
_MODEL_UNSAFE = re.compile(r"([\[\]<>!|#\\&])")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+|$)(.*?)(?:\s+#+)?\s*$")
_QUOTE_MARKERS = re.compile(r"^\s{0,3}(?:>\s?)+")
_SETEXT_OR_RULE = re.compile(r"^(\s*)([=\-_*])")


def md_model_prose(text: str, limit: int = 8000) -> list[str]:
    """Model-written (or target-quoting) Markdown as lines of inert Markdown that keep its
    paragraphs, lists and emphasis but can make no link, image, heading, table or HTML: a
    heading becomes a bold line, a quote marker is dropped, a line of ``=``/``-`` (which would
    make the line above a heading) is escaped, and address-like words are code spans."""
    lines = []
    for raw in text[:limit].splitlines():
        line = _QUOTE_MARKERS.sub("", raw.rstrip())
        heading = _HEADING.match(line)
        if heading:
            title = heading.group(1).strip()
            lines.append(f"**{_inert_words(title, _MODEL_UNSAFE, pipes=False)}**" if title else "")
            continue
        if line.strip() and set(line.strip()) <= set("=-_* "):
            lines.append(_SETEXT_OR_RULE.sub(r"\1\\\2", line))  # literal, not a rule
            continue
        lines.append(_inert_words(line, _MODEL_UNSAFE, pipes=False))
    return lines


def md_model_quote(text: str, limit: int = 8000) -> str:
    """Model-written prose (see ``md_model_prose``) as a blockquote: the model read untrusted
    target text, so what it writes is untrusted too, and it must not look like the report's own
    sections."""
    lines = md_model_prose(text, limit)
    return "\n".join(f"> {line}" if line else ">" for line in lines).strip()
