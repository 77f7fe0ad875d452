"""Secret-name and placeholder heuristics shared by the Python and regex secret rules."""

from __future__ import annotations

import itertools
import math
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


# Credentials with a recognisable shape: AWS key ids, GitHub/Slack/Stripe/Google tokens, JWTs,
# PEM private-key blocks.
KNOWN_KEY_RE = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|\bAIza[0-9A-Za-z_-]{35}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
# Weak defaults left in a signing-key setting (SECRET_KEY = "changeme") are a finding: anyone
# can forge sessions with a known key. In other names ("SMTP_PASSWORD = 'changeme'" in a
# settings template) they stay placeholders.
_SIGNING_KEY_RE = re.compile(r"(?i)(?:^|_)(?:secret|signing)_?key$")
_WEAK_DEFAULTS: Final[frozenset[str]] = frozenset(
    {"changeme", "change-me", "change_me", "secret", "password", "admin", "default", "test"}
)
# CSS selectors, paths and dotted/dashed identifiers: what a UI names, not a credential.
_SELECTOR_RE = re.compile(r"[#.\[][\w-].*|[a-z]+(?:[-_.][a-z]+)+")
_ENTROPY_MIN = 3.5
_ENTROPY_LEN = 16
_PASSWORD_LEN = 8


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s character distribution."""
    if not value:
        return 0.0
    counts = [value.count(c) for c in set(value)]
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts)


def is_secret_value(name: str, value: str) -> bool:
    """True when a literal assigned to a secret-named variable looks like a real credential:
    a known key shape, random-looking text (Shannon entropy >= 3.5 bits/char over >= 16
    characters), a password-like mix of letters and digits, or a weak default ("changeme")
    as a signing key. Selectors ("#password-field"), status messages and placeholders
    are not."""
    v = value.strip()
    if KNOWN_KEY_RE.search(v):
        return True
    if v.lower() in _WEAK_DEFAULTS:
        return bool(_SIGNING_KEY_RE.search(name))
    if is_placeholder(v) or _SELECTOR_RE.fullmatch(v):
        return False
    if len(v) >= _ENTROPY_LEN and shannon_entropy(v) >= _ENTROPY_MIN:
        return True
    if "/" in v or "\\" in v:
        return False  # a path or URL of ordinary entropy
    # Human-chosen passwords are short, so entropy says little: a mix of letters and digits
    # (or other symbols) in a password-like length is enough.
    has_alpha = any(c.isalpha() for c in v)
    has_other = any(not c.isalpha() for c in v)
    return len(v) >= _PASSWORD_LEN and has_alpha and has_other
