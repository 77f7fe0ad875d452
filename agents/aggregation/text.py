"""Untrusted text (model output, target paths, finding titles) made inert in Markdown."""

from __future__ import annotations

import re

_MD_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def md_escape(text: str) -> str:
    """Untrusted text (target names, paths, titles) as literal Markdown text: every Markdown
    punctuation character backslash-escaped, so ``[x](https:evil)`` never becomes a link and a
    pipe never splits a table row; newlines folded."""
    return _MD_PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def md_code(text: str) -> str:
    """Untrusted text as an inline code span (backslashes do not escape inside one, so a
    backtick in the text is replaced rather than allowed to close the span)."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


_MODEL_UNSAFE = re.compile(r"([\[\]<>!|#\\])")


def md_model_quote(text: str, limit: int = 8000) -> str:
    """Model-written prose as a blockquote that keeps its paragraphs, lists and emphasis but
    can make no link, image, heading, table or HTML: the model read untrusted target text, so
    what it writes is untrusted too, and it must not look like the report's own sections."""
    lines = [_MODEL_UNSAFE.sub(r"\\\1", line.rstrip()) for line in text[:limit].splitlines()]
    return "\n".join(f"> {line}" if line else ">" for line in lines).strip()
