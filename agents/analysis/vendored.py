"""Third-party code copied into a target (minified bundles, vendor folders, well-known front-end
libraries) is skipped by default: its findings belong to its upstream, and a 300 KB one-line
bundle drowns the report. Recognised by path, by file name, by the library's banner in the
file's head, and by minified content — copies are often renamed or dropped in `static/js/`."""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.min\.(?:js|css|mjs)$"), "minified third-party bundle"),
    (re.compile(r"(?:^|/)node_modules/"), "vendored dependency (node_modules/)"),
    (re.compile(r"(?:^|/)(?:vendor|vendored|third_party)/"), "vendored third-party code"),
    (re.compile(r"(?:^|/)static/(?:.+/)?libs?/"), "vendored static library (static/**/lib)"),
)

# Well-known front-end libraries, by the names their distributions ship under, with an optional
# version and `.min`/`.slim`/`.bundle` parts: `jquery-3.6.0.js`, `bootstrap.bundle.js`.
_LIBRARIES = (
    "jquery(?:[-.]ui|[-.]migrate|[-.]validate)?",
    "bootstrap(?:[-.](?:grid|reboot|theme|datepicker|select|table))?",
    "angular(?:[-.][a-z]+)?",
    "react(?:[-.]dom)?",
    "lodash",
    "underscore",
    "backbone",
    "moment(?:[-.]timezone)?",
    "d3",
    "popper",
    "select2",
    "(?:jquery[-.])?datatables",
    "chart",
    "font-?awesome",
    "highlight",
    "codemirror",
    "tinymce",
    "ckeditor",
    "vue",
    "axios",
    "handlebars",
    "mustache",
    "knockout",
    "modernizr",
    "normalize",
    "require",
    "socket\\.io",
    "htmx",
    "alpine",
)
_VERSION = r"(?:[-.]v?\d+(?:\.\d+)*(?:[-.][a-z0-9]+)?)?"
_PARTS = r"(?:[-.](?:slim|bundle|esm|umd|full|all|core|min|prod|production|with-locales))*"
_NAME = re.compile(
    rf"(?:^|/)(?:{'|'.join(_LIBRARIES)}){_VERSION}{_PARTS}\.(?:js|mjs|css)$", re.IGNORECASE
)

# Banners libraries put at the top of their distributed files.
_HEAD_CHARS = 2048
_BANNERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/\*!?\s*jQuery(?:\s+UI)?\s+v?\d", re.IGNORECASE), "jQuery banner"),
    (re.compile(r"\*\s*Bootstrap\s+v?\d", re.IGNORECASE), "Bootstrap banner"),
    (re.compile(r"@license\b"), "@license banner"),
    (re.compile(r"\(c\)[^\n]{0,200}\|\s*MIT\s+License", re.IGNORECASE), "MIT License banner"),
    (re.compile(r"/\*![^\n]{0,200}\|\s*\(c\)[^\n]{0,200}\*/", re.IGNORECASE), "library banner"),
)

# Minified code: people do not write 300-character lines on average, nor 2,000-character ones.
_MINIFIED_SUFFIXES = (".js", ".mjs", ".css")
_AVG_LINE = 300
_LONG_LINE = 2000


def vendored_reason(path: str, text: str | None = None) -> str | None:
    """Why `path` is skipped as third-party code, or None when it is the target's own. With
    the file's `text`, its banner and minification are checked as well."""
    norm = path.replace("\\", "/")
    reason = next((reason for pattern, reason in _RULES if pattern.search(norm)), None)
    if reason:
        return reason
    if not norm.lower().endswith(_MINIFIED_SUFFIXES):
        return None
    if _NAME.search(norm):
        return "well-known third-party library (by file name)"
    return _content_reason(norm, text) if text else None


def _content_reason(path: str, text: str) -> str | None:
    head = text[:_HEAD_CHARS]
    banner = next((reason for pattern, reason in _BANNERS if pattern.search(head)), None)
    if banner:
        return banner
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    longest = max(len(line) for line in lines)
    if longest > _LONG_LINE or sum(map(len, lines)) / len(lines) > _AVG_LINE:
        return f"minified code (longest line {longest} characters)"
    return None
