"""A report's Markdown as HTML. Its text comes from models and targets, so it is untrusted: raw
HTML is escaped (markdown-it's ``js-default``), no link or image is made at all (the report's own
Markdown has none, and a model's would be a phishing or exfiltration channel: the URL stays as
text), and the result is cleaned again with an allow-list that has no ``a``, no ``img`` and no
attribute but a table cell's alignment."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("js-default").enable("table")
# markdown-it asks this of every link and image destination (inline, reference, autolink):
# refusing them all leaves ``[text](url)`` and ``![alt](url)`` as the literal text they are.
_md.validateLink = lambda url: False  # type: ignore[method-assign]

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
        "hr",
        "br",
    },
    attributes={"th": {"style"}, "td": {"style"}, "ol": {"start"}},
    filter_style_properties={"text-align"},
    url_schemes=set(),
)


def render_markdown(source: str) -> str:
    return _cleaner.clean(_md.render(source or ""))


def clean_html(html: str) -> str:
    """Stored report HTML cleaned again with today's allow-list before it is shown: a version
    stored under an older, looser one (links were once allowed) shows no more than a new one."""
    return _cleaner.clean(html or "")
