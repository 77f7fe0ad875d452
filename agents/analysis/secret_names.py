"""Secret-name and placeholder heuristics shared by the Python and regex secret rules."""

from __future__ import annotations

import itertools
import re
from typing import Final

from agents.analysis.finding import EVIDENCE_MAX as MAX_EVIDENCE_CHARS

_SECRET_WORDS: Final[frozenset[str]] = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
    }
)
_SECRET_PAIRS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("auth", "token"),
        ("client", "secret"),
        ("signing", "key"),
    }
)
# A trailing word like these means the value describes the secret, not the secret itself.
_NOT_SECRET_SUFFIXES: Final[frozenset[str]] = frozenset(
    {
        "url",
        "uri",
        "field",
        "fields",
        "name",
        "env",
        "var",
        "path",
        "file",
        "header",
        "type",
        "len",
        "length",
        "prefix",
        "pattern",
        "regex",
        "label",
        "id",
        "count",
        "expiry",
        "expires",
        "ttl",
        "timeout",
        "min",
        "max",
        "format",
        "fmt",
        "mode",
        "required",
        "policy",
        "chars",
        "endpoint",
        "param",
        "message",
        "msg",
        "hint",
        "placeholder",
        "help",
    }
)
_PLACEHOLDERS: Final[frozenset[str]] = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "password",
        "secret",
        "todo",
        "tbd",
        "none",
        "null",
        "example",
        "dummy",
        "placeholder",
        "redacted",
        "test",
        "your-api-key",
        "your_api_key",
        "your-token",
        "your_token",
        "xxxx",
        "notset",
        "not-set",
        "unset",
        "default",
    }
)
# Templates and env-var *names* rather than values: <secret>, ${VAR}, {{ var }}, %(x)s, API_KEY.
_TEMPLATE_RE = re.compile(r"<[^>]*>|\$\{?[\w.:-]+\}?|\{\{.*\}\}|%\(\w+\)s|[A-Z][A-Z0-9_]{2,}")
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_name(name: str) -> bool:
    """True when an identifier names a credential (db_password, apiKey, SECRET_KEY, ...)."""
    parts = [p.lower() for p in _NAME_PARTS.findall(name)]
    if not parts or parts[-1] in _NOT_SECRET_SUFFIXES:
        return False
    if any(p in _SECRET_WORDS for p in parts):
        return True
    return any((a, b) in _SECRET_PAIRS for a, b in itertools.pairwise(parts))


def is_placeholder(value: str) -> bool:
    """True for values that are clearly not real secrets, so they are not reported.

    Ignored: shorter than 4 chars (incl. empty), well-known placeholders ("changeme", "xxxx",
    "your-api-key", ...), a single repeated character or only punctuation ("****"),
    templates (`<...>`, `${VAR}`, `{{ var }}`, `%(name)s`), ALL_CAPS names (an env-var *name*
    such as "DJANGO_SECRET_KEY"), and anything containing whitespace (prose such as
    "Invalid password").
    """
    v = value.strip()
    if len(v) < 4 or v.lower() in _PLACEHOLDERS or len(set(v.lower())) == 1:
        return True
    if any(c.isspace() for c in v) or re.fullmatch(r"[\W_]+", v):
        return True
    return bool(_TEMPLATE_RE.fullmatch(v))


def mask_secret(value: str) -> str:
    """Keep the first 2 characters so a reviewer can recognise the value, hide the rest."""
    return value[:2] + "****"


def masked_line(line: str, value: str) -> str:
    """The stripped line with every occurrence of `value` masked (capped at 300 chars)."""
    return (
        line.strip().replace(value, mask_secret(value))[:MAX_EVIDENCE_CHARS]
        if value
        else line.strip()[:MAX_EVIDENCE_CHARS]
    )
