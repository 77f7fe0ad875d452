"""Security rules for Django / Jinja templates (.html, .jinja, .j2, .djhtml).

Both engines autoescape by default, so the risky spots are the places a template opts out:
the `|safe` filter and `{% autoescape off %}` / `{% autoescape false %}` blocks. Bandit does not
read templates at all, so these are ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from agents.analysis.base import make_finding
from agents.analysis.finding import RawFinding

TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".djhtml")
_SAFE_FILTER = re.compile(r"\{\{[^}]*\|\s*safe\b[^}]*\}\}")
_AUTOESCAPE_OFF = re.compile(r"\{%-?\s*autoescape\s+(?:off|false)\s*-?%\}", re.IGNORECASE)
_COMMENT = re.compile(r"\{#.*?#\}|<!--.*?-->", re.DOTALL)


def is_template(path: str) -> bool:
    return path.lower().endswith(TEMPLATE_SUFFIXES)


def template_findings(path: str, text: str, lines: list[str]) -> Iterator[RawFinding]:
    # Blank out comments (keeping newlines) so a commented-out `|safe` is not reported.
    clean = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    for i, line in enumerate(clean.splitlines(), 1):
        if m := _SAFE_FILTER.search(line):
            yield make_finding(
                "sec.xss",
                path,
                lines,
                i,
                confidence=0.6,
                extra=f"`{m.group(0)[:80]}` prints the value without escaping.",
            )
        if _AUTOESCAPE_OFF.search(line):
            yield make_finding(
                "sec.xss",
                path,
                lines,
                i,
                confidence=0.7,
                extra="Autoescaping is switched off for the whole block.",
            )
