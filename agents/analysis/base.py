"""Core types shared by every analyzer path: the finding record, the rule table, helpers.

Contract: nothing in this module raises on odd input; helpers clamp line numbers to the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from agents.analysis.finding import RawFinding, Severity

# Re-exported: the secret heuristics live in their own module; rules import them from here.
from agents.analysis.secret_names import is_placeholder as is_placeholder
from agents.analysis.secret_names import is_secret_name as is_secret_name
from agents.analysis.secret_names import is_secret_value as is_secret_value
from agents.analysis.secret_names import mask_secret as mask_secret
from agents.analysis.secret_names import masked_line as masked_line

CODE_LENSES: Final[tuple[str, ...]] = ("security", "reliability", "maintainability")
SEVERITIES: Final[tuple[str, ...]] = ("info", "low", "medium", "high", "critical")
MAX_EVIDENCE_CHARS: Final[int] = 300
AWS_KEY_RE: Final[re.Pattern[str]] = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
PRIVATE_KEY_RE: Final[re.Pattern[str]] = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
)


@dataclass(frozen=True)
class RuleSpec:
    """Static description of a rule: which lens it belongs to and how to explain it."""

    lens: str
    title: str
    severity: Severity
    detail: str


def _r(lens: str, title: str, severity: Severity, detail: str) -> RuleSpec:
    return RuleSpec(lens=lens, title=title, severity=severity, detail=detail)


# One table so the Python (ast) path and the regex path explain a rule the same way.
RULES: Final[dict[str, RuleSpec]] = {
    "sec.eval": _r(
        "security",
        "Dynamic code execution (eval/exec)",
        "high",
        "Evaluating strings as code runs whatever an attacker can get into them. "
        "Parse the data instead (ast.literal_eval, json) or dispatch via a lookup "
        "table.",
    ),
    "sec.shell": _r(
        "security",
        "Command run through a shell",
        "high",
        "Passing a command string to a shell allows command injection when any "
        "part comes from input. Pass an argument list with shell=False "
        "(subprocess.run([...])) and never pipe downloaded scripts into a shell.",
    ),
    "sec.sql": _r(
        "security",
        "SQL built from string formatting",
        "high",
        "Interpolating values into SQL text enables SQL injection. Use placeholders "
        "and pass the values separately (cursor.execute(sql, params)).",
    ),
    "sec.secret": _r(
        "security",
        "Hard-coded secret",
        "high",
        "Credentials in source end up in VCS history, logs and every copy of the "
        "repo. Load them from the environment or a secret manager and rotate this "
        "one.",
    ),
    "sec.aws_key": _r(
        "security",
        "AWS access key id in source",
        "critical",
        "A string shaped like an AWS access key id is committed. Remove it, "
        "rotate the key in IAM and load credentials from the environment.",
    ),
    "sec.private_key": _r(
        "security",
        "Private key material in source",
        "critical",
        "A PEM private key block is committed. Remove it, treat the key as "
        "compromised, and mount keys from a secret store at runtime.",
    ),
    "sec.deserialize": _r(
        "security",
        "Unsafe deserialization",
        "high",
        "pickle/marshal/yaml.load (without SafeLoader) can execute code "
        "while loading. Use json or yaml.safe_load for untrusted data.",
    ),
    "sec.tls": _r(
        "security",
        "TLS certificate verification disabled",
        "high",
        "Turning off certificate checks allows man-in-the-middle attacks. Keep "
        "verification on and point to a CA bundle if a private CA is used.",
    ),
    "sec.weak_hash": _r(
        "security",
        "Weak hash algorithm (MD5/SHA-1)",
        "medium",
        "MD5 and SHA-1 are broken for collision resistance. Use SHA-256+ (or "
        "a password KDF such as bcrypt/argon2 for passwords); pass "
        "usedforsecurity=False if this is a non-security checksum.",
    ),
    "sec.debug": _r(
        "security",
        "Debug mode enabled",
        "medium",
        "Debug mode exposes stack traces, settings and sometimes an interactive "
        "console. Drive it from the environment and default it to off.",
    ),
    "sec.xss": _r(
        "security",
        "Autoescaping bypassed (XSS)",
        "medium",
        "Marking text safe or turning autoescape off sends it to the browser unescaped; "
        "if any part comes from a user this is cross-site scripting. Escape it, or build the "
        "markup with format_html / Markup.format so only the template is trusted.",
    ),
    "sec.ssti": _r(
        "security",
        "Template rendered from request data (SSTI)",
        "high",
        "A template string built from request data lets the requester run template code "
        "(often arbitrary Python). Render a fixed template and pass the data as context.",
    ),
    "sec.csrf": _r(
        "security",
        "CSRF protection disabled",
        "medium",
        "Without the CSRF check another site can make a logged-in user's browser submit "
        "this request. Keep the middleware on and exempt nothing that changes state.",
    ),
    "sec.weak_random": _r(
        "security",
        "Predictable randomness for a secret",
        "medium",
        "The `random` module is a Mersenne Twister: its output can be predicted from a few "
        "samples. Use `secrets.token_urlsafe()` / `secrets.randbelow()` for tokens, OTPs, "
        "passwords and keys.",
    ),
    "sec.path_traversal": _r(
        "security",
        "File path from request data (path traversal)",
        "high",
        "A path taken from the request can contain `../` and reach any file the process can "
        "read. Resolve it under a fixed base directory and refuse what escapes it "
        "(werkzeug.utils.safe_join, Path.resolve().is_relative_to).",
    ),
    "sec.ssrf": _r(
        "security",
        "Outgoing request to a URL from request data (SSRF)",
        "high",
        "The server fetches a URL the requester chose, which can reach internal services "
        "and cloud metadata endpoints. Allow-list hosts and schemes before fetching.",
    ),
    "sec.open_redirect": _r(
        "security",
        "Redirect to a URL from request data (open redirect)",
        "medium",
        "Redirecting to a requester-chosen URL lets phishing links borrow this site's name. "
        "Redirect only to relative paths or allow-listed hosts "
        "(django.utils.http.url_has_allowed_host_and_scheme).",
    ),
    "sec.xxe": _r(
        "security",
        "XML parser that resolves external entities (XXE)",
        "high",
        "A parser that resolves entities or loads DTDs lets a document read local files or "
        "reach internal hosts. Parse untrusted XML with defusedxml, or an lxml "
        "XMLParser(resolve_entities=False, no_network=True).",
    ),
    "sec.xpath": _r(
        "security",
        "XPath query built from untrusted data (XPath injection)",
        "high",
        "A value spliced into an XPath expression can rewrite the query and read other nodes. "
        "Use XPath variables (`tree.xpath('//user[name=$n]', n=value)`) or validate the value.",
    ),
    "sec.header_injection": _r(
        "security",
        "HTTP header built from request data (header injection)",
        "medium",
        "CR/LF characters in a header value split the response: the requester can add "
        "headers or a whole body. Reject or strip \\r and \\n, or allow-list the value.",
    ),
    "sec.clickjacking": _r(
        "security",
        "Framing protection missing or disabled (clickjacking)",
        "medium",
        "A page any site can frame can be overlaid to trick users into clicks. Send "
        "`X-Frame-Options: DENY` (or CSP `frame-ancestors 'self'`); keep Django's "
        "XFrameOptionsMiddleware.",
    ),
    "sec.info_disclosure": _r(
        "security",
        "Exception details sent to the client",
        "medium",
        "Tracebacks and exception text reveal paths, code and data to whoever triggers the "
        "error. Log them on the server and send a generic message.",
    ),
    "sec.cookie_flags": _r(
        "security",
        "Cookie without HttpOnly or Secure",
        "medium",
        "Without HttpOnly any injected script can read the session cookie; without Secure it "
        "travels over plain HTTP. Keep both on for session and auth cookies.",
    ),
    "sec.idor": _r(
        "security",
        "Object fetched by a client-supplied id without an owner check (IDOR)",
        "medium",
        "Any signed-in user can read or change another user's object by changing the id. "
        "Scope the lookup to the user (`Note.objects.get(pk=pk, owner=request.user)`) or "
        "check object permissions before using it.",
    ),
    "sec.missing_auth": _r(
        "security",
        "State-changing view without an authentication check",
        "medium",
        "Anyone who can reach the URL can change data. Add the login decorator or mixin the "
        "other views use (`@login_required`, `LoginRequiredMixin`, `IsAuthenticated`).",
    ),
    "sec.missing_authz": _r(
        "security",
        "Privileged action open to any user",
        "high",
        "The action is reachable without a role or permission check. Require the role "
        "(`@staff_member_required`, `@permission_required`, a DRF permission class) on the "
        "server side.",
    ),
    "sec.session_forgery": _r(
        "security",
        "Cookie sessions signed with a key in the source",
        "high",
        "The whole session is kept in a cookie signed with a key written in the code: whoever "
        "has the code (or a leak of it) forges any user's session. Keep sessions server-side "
        "or load the key from the environment and rotate it.",
    ),
    "sec.log_injection": _r(
        "security",
        "Request data written to the log (log injection)",
        "low",
        "A line break in the value forges log entries and can mislead whoever reads the log. "
        "Log it with %r / repr() or strip CR and LF first.",
    ),
    "sec.mass_assignment": _r(
        "security",
        "Client fields copied onto a model (mass assignment)",
        "medium",
        "Whatever fields the request names are set, including ones the client must not change "
        "(roles, owners, balances). Copy an explicit list of allowed fields.",
    ),
    "sec.jwt": _r(
        "security",
        "JWT signature not verified",
        "high",
        "A token whose signature is not checked (or that may use `none`) can be made by anyone "
        "with any claims. Verify with the expected key and a fixed list of algorithms.",
    ),
    "sec.dos": _r(
        "security",
        "Request-controlled size or count (resource exhaustion)",
        "medium",
        "A number from the request drives a loop, an allocation, a sleep or a query size "
        "without an upper bound. Clamp it (`min(n, LIMIT)`) or reject large values.",
    ),
    "rel.bare_except": _r(
        "reliability",
        "Bare except clause",
        "medium",
        "`except:` also catches KeyboardInterrupt and SystemExit and hides "
        "real bugs. Catch the specific exceptions you expect.",
    ),
    "rel.swallowed_exception": _r(
        "reliability",
        "Exception swallowed silently",
        "medium",
        "The handler catches everything and does nothing, so "
        "failures vanish without a trace. Log it, re-raise, or "
        "catch a narrower exception.",
    ),
    "rel.no_timeout": _r(
        "reliability",
        "Network call without a timeout",
        "medium",
        "Without a timeout a slow or dead peer blocks this call forever and "
        "ties up the worker. Pass an explicit timeout=...",
    ),
    "rel.open_leak": _r(
        "reliability",
        "File opened outside a with-statement",
        "low",
        "The handle is only closed when garbage collected (or never on "
        "errors). Use `with open(...) as f:`.",
    ),
    "rel.mutable_default": _r(
        "reliability",
        "Mutable default argument",
        "medium",
        "Default values are created once and shared across calls, so "
        "mutations leak between calls. Default to None and create the "
        "object inside the function.",
    ),
    "rel.empty_catch": _r(
        "reliability",
        "Empty catch block",
        "medium",
        "Errors are discarded silently. Handle, log or rethrow them.",
    ),
    "rel.no_set_e": _r(
        "reliability",
        "Shell script does not stop on errors",
        "medium",
        "Without `set -e` (ideally `set -euo pipefail`) the script keeps going "
        "after a failed command and may deploy a half-built state.",
    ),
    "mnt.long_function": _r(
        "maintainability",
        "Very long function",
        "low",
        "Long functions are hard to read, test and review. Split it into smaller named steps.",
    ),
    "mnt.deep_nesting": _r(
        "maintainability",
        "Deeply nested code",
        "low",
        "Deep nesting hides the main path. Use early returns/continue or extract helpers.",
    ),
    "mnt.todo": _r(
        "maintainability",
        "Unresolved TODO/FIXME marker",
        "info",
        "Marker comments record known unfinished work. Resolve it or track it in "
        "the issue tracker.",
    ),
    "mnt.too_many_params": _r(
        "maintainability",
        "Too many parameters",
        "low",
        "Many parameters make calls error-prone. Group related values "
        "into a dataclass or split the function.",
    ),
    "mnt.long_file": _r(
        "maintainability",
        "Very long file",
        "low",
        "Very long modules mix responsibilities. Split it into focused modules.",
    ),
    "mnt.complexity": _r(
        "maintainability",
        "High cyclomatic complexity",
        "medium",
        "Many branches mean many paths to test. Simplify the logic or "
        "extract decision tables/helpers.",
    ),
}

# MITRE CWE of each rule that has one; maintainability smells have none.
RULE_CWE: Final[dict[str, int]] = {
    "sec.eval": 95,
    "sec.shell": 78,
    "sec.sql": 89,
    "sec.secret": 798,
    "sec.aws_key": 798,
    "sec.private_key": 321,
    "sec.deserialize": 502,
    "sec.tls": 295,
    "sec.weak_hash": 328,
    "sec.debug": 489,
    "sec.xss": 79,
    "sec.ssti": 1336,
    "sec.csrf": 352,
    "sec.weak_random": 338,
    "sec.path_traversal": 22,
    "sec.ssrf": 918,
    "sec.open_redirect": 601,
    "sec.xxe": 611,
    "sec.xpath": 643,
    "sec.header_injection": 113,
    "sec.clickjacking": 1021,
    "sec.info_disclosure": 209,
    "sec.cookie_flags": 1004,
    "sec.idor": 639,
    "sec.missing_auth": 862,
    "sec.missing_authz": 285,
    "sec.session_forgery": 321,
    "sec.log_injection": 117,
    "sec.mass_assignment": 915,
    "sec.jwt": 347,
    "sec.dos": 770,
    "rel.bare_except": 396,
    "rel.swallowed_exception": 390,
    "rel.empty_catch": 390,
    "rel.no_timeout": 400,
    "rel.open_leak": 775,
}

RULES_BY_LENS: Final[dict[str, tuple[str, ...]]] = {
    lens: tuple(sorted(rid for rid, spec in RULES.items() if spec.lens == lens))
    for lens in CODE_LENSES
}


def make_evidence(lines: list[str], start: int, end: int) -> str:
    """Source lines `start..end` (1-based, inclusive, clamped) stripped, capped at 300 chars."""
    if not lines:
        return ""
    start = max(1, min(start, len(lines)))
    end = max(start, min(end, len(lines)))
    text = "\n".join(line.strip() for line in lines[start - 1 : end])
    return text[:MAX_EVIDENCE_CHARS]


def make_finding(
    rule: str,
    path: str,
    lines: list[str],
    line_start: int,
    line_end: int | None = None,
    *,
    confidence: float,
    severity: Severity | None = None,
    title: str | None = None,
    extra: str = "",
    evidence: str | None = None,
) -> RawFinding:
    """Build a RawFinding from the rule table; `extra` is prepended to the standard detail."""
    spec = RULES[rule]
    end = line_start if line_end is None else max(line_start, line_end)
    cwe = RULE_CWE.get(rule)
    detail = f"{extra.strip()} {spec.detail}".strip() + (f" (CWE-{cwe})" if cwe else "")
    ev = make_evidence(lines, line_start, end) if evidence is None else evidence
    return RawFinding(
        rule=rule,
        lens=spec.lens,
        title=title or spec.title,
        detail=detail,
        severity=severity or spec.severity,
        confidence=round(max(0.0, min(1.0, confidence)), 2),
        path=path,
        line_start=max(1, line_start),
        line_end=max(1, end),
        evidence=ev[:MAX_EVIDENCE_CHARS],
        cwe=cwe,
    )
