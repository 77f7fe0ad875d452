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
