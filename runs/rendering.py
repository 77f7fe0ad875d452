"""Markdown from models and targets is untrusted: render it with raw HTML escaped, then clean the
result with an allow-list (no images: an injected image URL is an exfiltration channel)."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("js-default").enable("table")

_cleaner = nh3.Cleaner(
    tags={
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "strong",
        "em",
        "code",
        "pre",
        "blockquote",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "a",
        "hr",
        "br",
    },
    attributes={"a": {"href", "title"}, "th": {"style"}, "td": {"style"}},
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
)


def render_markdown(source: str) -> str:
    return _cleaner.clean(_md.render(source or ""))
