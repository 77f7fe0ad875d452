"""Third-party code copied into a target (minified bundles, vendor folders) is skipped by
default: its findings belong to its upstream, and a 300 KB one-line bundle drowns the report."""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.min\.(?:js|css|mjs)$"), "minified third-party bundle"),
    (re.compile(r"(?:^|/)node_modules/"), "vendored dependency (node_modules/)"),
    (re.compile(r"(?:^|/)(?:vendor|vendored|third_party)/"), "vendored third-party code"),
    (re.compile(r"(?:^|/)static/(?:.+/)?libs?/"), "vendored static library (static/**/lib)"),
)


def vendored_reason(path: str) -> str | None:
    """Why `path` is skipped as third-party code, or None when it is the target's own."""
    norm = path.replace("\\", "/")
    return next((reason for pattern, reason in _RULES if pattern.search(norm)), None)
