"""Lenses about what a document claims or leaks: ``skeptic``, ``legal`` and ``security``.

Each ``run_*`` function takes a parsed document and a ``FindingSink`` and adds findings. The
security lens reads raw lines (code blocks included, since secrets hide there) and redacts the
secret itself from the evidence so the report does not re-leak it.
"""

from __future__ import annotations

import re

from agents.docs_analysis.base import FindingSink, has_citation
from agents.docs_analysis.text import Block, ParsedDocument

_NUMBER_CLAIM_RE = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?:%|percent\b)|\b\d+(?:\.\d+)?\s?x\b|\b\d+(?:\.\d+)?\s+times\s+"
    r"(?:faster|slower|more|less|fewer|better|cheaper)\b|\b\d+\s+out\s+of\s+\d+\b",
    re.IGNORECASE,
)
_SUPERLATIVE_RE = re.compile(
    r"\b(best|always|never|guaranteed|guarantees?|proven|fastest|safest|most (?:secure|"
    r"reliable|advanced)|unbeatable|industry-leading|world-class|zero downtime)\b",
    re.IGNORECASE,
)
_ABSOLUTE_RE = re.compile(
    r"\b(guarantee[sd]?|unlimited|risk-free|100\s?%|at all times|will never|fully secure|"
    r"completely secure|warrants?)\b",
    re.IGNORECASE,
)
_LIABILITY_RE = re.compile(
    r"\b(liable|liability|liabilities|indemnif(?:y|ies|ied|ication)|damages|compensat(?:e|ion)|"
    r"penalt(?:y|ies)|hold harmless)\b",
    re.IGNORECASE,
)
_PERSONAL_RE = re.compile(
    r"\b(e-?mail(?: address(?:es)?)?|home address(?:es)?|postal address(?:es)?|phone numbers?|"
    r"SSNs?|social security numbers?|dates? of birth|passport numbers?|credit card numbers?|"
    r"IP address(?:es)?|location data|biometric data|health data|personal data)\b",
    re.IGNORECASE,
)
_CONSENT_RE = re.compile(
    r"\b(consent\w*|retention|retain\w*|delet\w+|erase\w*|purg\w+|GDPR|CCPA|opt[- ]in|opt[- ]out|"
    r"lawful basis|privacy (?:policy|notice))\b",
    re.IGNORECASE,
)
_TERM_RE = re.compile(
    r"(?<=[a-z,;:] )(?:the|a|an|any|all|such|each|our|your)\s+"
    r"((?:[A-Z][a-z]+)(?:\s+[A-Z][a-z]+){1,3})\b"
)
_DEFINED_RE = re.compile(
    r"[\"\u201c]([A-Z][\w ]{2,60})[\"\u201d]|\*\*([A-Z][\w ]{2,60})\*\*\s*(?:means|refers)|"
    r"\b((?:[A-Z][a-z]+\s+){0,3}[A-Z][a-z]+)\s+(?:means|refers to|is defined as)\b"
)

_CRED_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://([^\s:/@]+):([^\s/@]+)@[^\s)]+")
_SECRET_RE = re.compile(
    r"\b(passwords?|passwd|pwd|secret(?:[ _-]key)?|api[ _-]?key|access[ _-]?key|auth[ _-]?token|"
    r"token|private[ _-]key)\b\s*(is|=|:|was|to)\s*[`\"']?([^\s`\"',;]{6,})",
    re.IGNORECASE,
)
_PLACEHOLDER_RE = re.compile(
    r"^(?:<.*>|\*+|x{3,}|\.{3}|redacted|changeme_placeholder|your[-_].*|example.*|\$\{?\w+\}?|"
    r"required|rotated|stored|set|kept|managed|never|not|only|masked|hashed|encrypted)$",
    re.IGNORECASE,
)
_TOKEN_SHAPES_RE = re.compile(
    r"\b(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9]{20,}|"
    r"xox[abpr]-[A-Za-z0-9-]{10,})\b|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_PRIVATE_IP_RE = re.compile(
    r"\b(10\.\d{1,3}\.\d{1,3}\.\d{1,3}|192\.168\.\d{1,3}\.\d{1,3}|"
    r"172\.(?:1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3})\b"
)
_INTERNAL_HOST_RE = re.compile(
    r"\b((?:[a-z0-9-]+\.)+(?:internal|intranet|corp|lan|local))\b", re.IGNORECASE
)


def _nearby(block: Block, start: int, end: int) -> str:
    """Raw text of a sentence plus the following 200 characters: where a citation would sit."""
    return block.raw[max(0, start - 40) : min(len(block.raw), end + 200)]


def run_skeptic(doc: ParsedDocument, sink: FindingSink) -> None:
    """Numeric claims and superlatives with no citation, link or reference nearby."""
    for sent in doc.sentences:
        if has_citation(_nearby(sent.block, sent.start, sent.end)):
            continue
        number = _NUMBER_CLAIM_RE.search(sent.text)
        if number:
            sink.add(
                "unsourced-number",
                f"Unsourced figure \u201c{number.group().strip()}\u201d",
                "A precise figure invites trust it has not earned: nothing nearby says where it "
                "comes from. Link the dashboard, study or dataset it was measured on, or soften "
                "it to what you can show.",
                "medium",
                0.7,
                sent.line_start,
                sent.line_end,
            )
        sup = _SUPERLATIVE_RE.search(sent.text)
        # A sentence that opens with "Never"/"Always" is an instruction, not a claim.
        if sup and not (sup.start() == 0 and sup.group(1).lower() in ("never", "always")):
            sink.add(
                "unsupported-superlative",
                f"Unsupported absolute claim \u201c{sup.group()}\u201d",
                f"\u201c{sup.group()}\u201d asserts something absolute with no evidence nearby. "
                "Cite the evidence or qualify the claim (\u201cin our tests\u201d, "
                "\u201cusually\u201d).",
                "low",
                0.55,
                sent.line_start,
                sent.line_end,
            )


def _defined_terms(doc: ParsedDocument) -> set[str]:
    found: set[str] = set()
    for block in doc.blocks:
        if block.kind == "heading":
            found.add(" ".join(block.prose.split()).lower())
            continue
        for match in _DEFINED_RE.finditer(block.raw):
            term = next(g for g in match.groups() if g)
            found.add(" ".join(term.split()).lower())
    return found


def run_legal(doc: ParsedDocument, sink: FindingSink) -> None:
    """Absolute promises, liability language, personal data without consent, undefined terms."""
    for sent in doc.sentences:
        promise = _ABSOLUTE_RE.search(sent.text)
        if promise:
            sink.add(
                "absolute-promise",
                f"Absolute promise \u201c{promise.group()}\u201d",
                "Unqualified promises can become contractual commitments. Qualify them "
                "(\u201cwe aim to\u201d, \u201cunder normal operation\u201d) or have counsel "
                "confirm the company can stand behind them.",
                "medium",
                0.7,
                sent.line_start,
                sent.line_end,
            )
        liability = _LIABILITY_RE.search(sent.text)
        if liability:
            sink.add(
                "liability-language",
                f"Liability language \u201c{liability.group()}\u201d",
                "Statements about liability, damages or compensation create or waive legal "
                "obligations. Route this sentence through legal review before publishing.",
                "medium",
                0.6,
                sent.line_start,
                sent.line_end,
            )
    for section in doc.sections():
        prose = "\n".join(b.prose for b in section if b.kind != "code")
        if _CONSENT_RE.search(prose):
            continue
        hits: list[tuple[int, str]] = []
        for block in section:
            if block.kind == "code":
                continue
            hits += [
                (block.line_at(m.start()), m.group()) for m in _PERSONAL_RE.finditer(block.prose)
            ]
        if hits:
            terms = ", ".join(dict.fromkeys(t.lower() for _, t in hits))
            sink.add(
                "personal-data",
                f"Personal data ({terms}) without consent or retention terms",
                "This section handles personal data but never says on what basis it is "
                "collected, how long it is kept or how it is deleted. Add the consent basis and "
                "retention period, or link the privacy notice.",
                "high",
                0.65,
                hits[0][0],
            )
    defined = _defined_terms(doc)
    seen: set[str] = set()
    for block in doc.prose_blocks:
        for match in _TERM_RE.finditer(block.prose):
            term = " ".join(match.group(1).split())
            key = term.lower()
            if key in seen or key in defined:
                continue
            seen.add(key)
            sink.add(
                "undefined-term",
                f"Capitalised term \u201c{term}\u201d is never defined",
                f"\u201c{term}\u201d is capitalised like a defined term, but no definition "
                f"(\u201c{term}\u201d means \u2026) exists. Define it, or write it in lower case.",
                "low",
                0.5,
                block.line_at(match.start(1)),
            )


def _redact(line: str, secret: str) -> str:
    shown = secret[:2] + "\u2026" if len(secret) > 4 else "\u2026"
    return line.replace(secret, shown)


def run_security(doc: ParsedDocument, sink: FindingSink) -> None:
    """Credentials in URLs, secrets and token-shaped strings, internal hosts and private IPs."""
    for number, line in enumerate(doc.lines, start=1):
        if len(line) > 5000:
            line = line[:5000]  # minified blobs: bound regex work per line
        for match in _CRED_URL_RE.finditer(line):
            sink.add(
                "credential-url",
                "URL with embedded credentials",
                "The URL carries a user name and password. Anyone who reads the document can "
                "log in. Remove the credentials, rotate the password, and reference a secret "
                "store instead.",
                "critical",
                0.95,
                number,
                evidence=_redact(line, match.group(2)),
            )
        for match in _SECRET_RE.finditer(line):
            value = match.group(3).rstrip(".:!?)")
            # After a verb ("password is ...") only a value with a digit or symbol looks like a
            # secret; plain words there are prose ("the password is required").
            wordy = match.group(2).isalpha() and value.isalpha()
            if wordy or _PLACEHOLDER_RE.match(value) or "://" in line[: match.end()]:
                continue
            sink.add(
                "secret",
                f"Possible {match.group(1).lower()} in plain text",
                "A secret written into a document spreads to every copy and backup of it. "
                "Remove it, rotate it now, and point to the secret manager entry instead.",
                "high",
                0.8,
                number,
                evidence=_redact(line, value),
            )
        for match in _TOKEN_SHAPES_RE.finditer(line):
            sink.add(
                "token",
                "Credential-shaped token",
                "This string has the shape of a real cloud/API credential or private key. "
                "Treat it as leaked: revoke it and remove it from the document.",
                "critical",
                0.9,
                number,
                evidence=_redact(line, match.group()),
            )
        for match in _PRIVATE_IP_RE.finditer(line):
            if all(int(part) <= 255 for part in match.group(1).split(".")):
                sink.add(
                    "internal-address",
                    f"Internal IP address {match.group(1)}",
                    "Private addresses map the internal network for an attacker. Describe the "
                    "role (\u201cthe primary database\u201d) instead of its address.",
                    "medium",
                    0.7,
                    number,
                )
        for match in _INTERNAL_HOST_RE.finditer(line):
            sink.add(
                "internal-host",
                f"Internal hostname {match.group(1)}",
                "Internal hostnames reveal infrastructure layout. Keep them out of documents "
                "that may leave the team, or use a role name.",
                "medium",
                0.65,
                number,
            )
