"""What an offline report says about its own reach: the third-party files its agents skipped,
and — for a codebase audit the heuristic provider ran — which classes of flaw the offline
analyzer checks and which it cannot, so a clean report is not read as a clean bill of health."""

from __future__ import annotations

from typing import Any

from agents.aggregation.text import md_escape
from agents.wording import count

# The security rules of the offline analyzer (agents.analysis.base.RULE_CWE), in words; a test
# keeps this in step with the registry.
CHECKED_CLASSES: dict[str, str] = {
    "sec.sql": "SQL injection",
    "sec.shell": "command injection",
    "sec.eval": "code injection (eval/exec)",
    "sec.ssti": "server-side template injection",
    "sec.xss": "cross-site scripting",
    "sec.xpath": "XPath injection",
    "sec.xxe": "XML external entities",
    "sec.path_traversal": "path traversal",
    "sec.open_redirect": "open redirects",
    "sec.ssrf": "server-side request forgery",
    "sec.header_injection": "header injection",
    "sec.log_injection": "log injection",
    "sec.deserialize": "unsafe deserialization",
    "sec.secret": "hard-coded secrets",
    "sec.aws_key": "cloud keys in code",
    "sec.private_key": "private keys in code",
    "sec.weak_hash": "weak hashing",
    "sec.weak_random": "weak randomness",
    "sec.tls": "disabled TLS verification",
    "sec.jwt": "JWT verification turned off",
    "sec.csrf": "missing CSRF protection",
    "sec.cookie_flags": "insecure cookie flags",
    "sec.clickjacking": "clickjacking",
    "sec.debug": "debug mode in production settings",
    "sec.session_forgery": "forgeable sessions",
    "sec.info_disclosure": "error details in responses",
    "sec.mass_assignment": "mass assignment",
    "sec.dos": "request-controlled resource use",
    "sec.idor": "objects fetched by a request id without an owner check (heuristic)",
    "sec.missing_auth": "state-changing views without a login check (heuristic)",
    "sec.missing_authz": "admin actions without a role check (heuristic)",
}

CANNOT_CHECK = (
    "business logic (prices, quotas, workflows, race conditions)",
    "most authorization: who may see or change what, beyond the patterns above",
    "data flow across modules deeper than one helper call",
    "runtime configuration: environment variables, deployed settings, infrastructure",
)

MODEL_ADVICE = (
    "For those, run the audit with a model provider "
    "(--provider openai, anthropic or openai-compatible)."
)

COVERAGE_PLAYBOOKS = frozenset({"codebase-audit"})


def vendored_note(files: list[dict[str, Any]]) -> str | None:
    """One line naming the third-party files the agents skipped and why, or None."""
    seen: dict[str, str] = {}
    for item in files:
        if isinstance(item, dict) and item.get("path"):
            seen.setdefault(str(item["path"]), str(item.get("reason") or "third-party"))
    if not seen:
        return None
    shown = "; ".join(
        f"{path.rsplit('/', 1)[-1]}: {reason}" for path, reason in sorted(seen.items())[:10]
    )
    more = "; …" if len(seen) > 10 else ""
    return f"{count(len(seen), 'file')} skipped as third-party code ({shown}{more})"


def shows_coverage(playbook: str, is_llm: bool) -> bool:
    """The section belongs to offline codebase audits: a model provider's reach is different."""
    return playbook in COVERAGE_PLAYBOOKS and not is_llm


def coverage_markdown() -> list[str]:
    """The report's "What the offline analyzer checks / cannot check" section, as lines."""
    return [
        "## What the offline analyzer checks / cannot check",
        "",
        "Checks: " + md_escape(", ".join(CHECKED_CLASSES.values())) + "; plus reliability and "
        "maintainability rules.",
        "",
        "Cannot check: " + md_escape("; ".join(CANNOT_CHECK)) + ". For those, run the audit "
        "with a model provider (`--provider openai`, `anthropic` or `openai-compatible`).",
        "",
    ]


def coverage_note() -> str:
    """The same in one line, for the report's notes (and so its exports)."""
    return (
        f"The offline analyzer checks {len(CHECKED_CLASSES)} classes of security flaw; it cannot "
        f"check {'; '.join(CANNOT_CHECK)}. {MODEL_ADVICE}"
    )
