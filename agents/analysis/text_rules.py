"""Line-oriented regex rules for non-Python files and for Python that does not parse.

Regexes cannot see syntax, so confidences here are lower than the ast path's, and rules skip
comment-only lines (except the TODO rule, handled elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from agents.analysis.base import (
    AWS_KEY_RE,
    PRIVATE_KEY_RE,
    is_secret_name,
    is_secret_value,
    make_finding,
    masked_line,
)
from agents.analysis.finding import RawFinding, Severity

ALL = frozenset({"py", "js", "sh", "go", "rb", "php", "java", "config"})
CODE = frozenset({"py", "js", "sh", "go", "rb", "php", "java"})


@dataclass(frozen=True)
class TextRule:
    """A regex applied to each non-comment line of the languages listed."""

    rule: str
    pattern: re.Pattern[str]
    confidence: float
    languages: frozenset[str]
    extra: str = ""
    severity: Severity | None = None
    unless: re.Pattern[str] | None = None  # same-line pattern that makes the match benign


def _t(
    rule: str,
    pattern: str,
    confidence: float,
    langs: set[str] | frozenset[str],
    extra: str = "",
    severity: Severity | None = None,
    unless: str | None = None,
) -> TextRule:
    return TextRule(
        rule,
        re.compile(pattern),
        confidence,
        frozenset(langs),
        extra,
        severity,
        re.compile(unless) if unless else None,
    )


_HTTP = r"(?:get|post|put|patch|delete|head|options|request)"

TEXT_RULES: tuple[TextRule, ...] = (
    # --- security ---
    _t("sec.eval", r"(?<![\w.$])(?:eval|exec)\s*\(", 0.6, {"py", "php"}),
    _t(
        "sec.eval",
        r"(?<![\w.$])eval\s*\(|\bnew\s+Function\s*\(",
        0.8,
        {"js"},
        "JavaScript eval()/new Function() compile strings into code.",
    ),
    _t("sec.eval", r"^\s*eval\s", 0.6, {"sh"}, "Shell `eval` re-parses its arguments."),
    _t("sec.eval", r"(?<![\w.])(?:eval|instance_eval|class_eval)\s*[\s(]", 0.6, {"rb"}),
    _t("sec.shell", r"\bshell\s*=\s*True\b|\bos\.(?:system|popen)\s*\(", 0.6, {"py"}),
    _t(
        "sec.shell",
        r"\b(?:child_process\.)?exec(?:Sync)?\s*\(\s*(?:`[^`]*\$\{|[\"'][^\"']*[\"']"
        r"\s*\+)",
        0.65,
        {"js"},
        "child_process.exec runs a shell command string.",
    ),
    _t(
        "sec.shell",
        r"\b(?:curl|wget)\b[^|#]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b",
        0.8,
        {"sh"},
        "A downloaded script is piped straight into a shell.",
        "high",
    ),
    _t("sec.shell", r"exec\.Command\(\s*\"(?:ba)?sh\"\s*,\s*\"-c\"", 0.7, {"go"}),
    _t("sec.shell", r"\b(?:system|shell_exec|passthru|popen|proc_open)\s*\([^)]*\$", 0.6, {"php"}),
    _t("sec.shell", r"Runtime\.getRuntime\(\)\.exec\(", 0.6, {"java"}),
    _t(
        "sec.sql",
        r"\.(?:execute|executemany|raw)\s*\(\s*(?:f[\"']|[\"'][^\"']*[\"']\s*[%+])",
        0.6,
        {"py"},
    ),
    _t(
        "sec.sql",
        r"\.(?:query|execute|raw|run|all|get)\s*\(\s*(?:`[^`]*\$\{|[\"'][^\"']*"
        r"\b(?:SELECT|INSERT|UPDATE|DELETE)\b[^\"']*[\"']\s*\+)",
        0.7,
        {"js"},
    ),
    _t("sec.sql", r"\.(?:Query|QueryRow|Exec)(?:Context)?\([^)]*fmt\.Sprintf\(", 0.7, {"go"}),
    _t(
        "sec.sql",
        r"(?i)\b(?:mysqli_query|->query|executeQuery|executeUpdate|execute)\s*\("
        r"[^)]*[\"']\s*(?:\.|\+)\s*\$?\w",
        0.55,
        {"php", "java"},
    ),
    _t(
        "sec.deserialize",
        r"\b(?:c?[Pp]ickle|marshal|dill)\.loads?\s*\(|\byaml\.unsafe_load\s*\(",
        0.7,
        {"py"},
    ),
    _t("sec.deserialize", r"\byaml\.load\s*\(", 0.6, {"py"}, "", None, r"SafeLoader|CSafeLoader"),
    _t(
        "sec.deserialize",
        r"\b(?:Marshal\.load|YAML\.load)\s*\(|\bunserialize\s*\(",
        0.6,
        {"rb", "php"},
    ),
    _t("sec.deserialize", r"\bObjectInputStream\b", 0.5, {"java"}),
    _t("sec.tls", r"\bverify\s*=\s*False\b|_create_unverified_context|\bCERT_NONE\b", 0.7, {"py"}),
    _t(
        "sec.tls",
        r"rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED\s*=\s*['\"]?0",
        0.85,
        {"js", "sh", "config"},
    ),
    _t("sec.tls", r"\bcurl\b.*\s(?:-k|--insecure)\b|\bwget\b.*--no-check-certificate", 0.8, {"sh"}),
    _t("sec.tls", r"InsecureSkipVerify\s*:\s*true", 0.85, {"go"}),
    _t(
        "sec.tls",
        r"VERIFY_NONE|ALLOW_ALL_HOSTNAME_VERIFIER|CURLOPT_SSL_VERIFYPEER\s*,\s*"
        r"(?:false|0)",
        0.75,
        {"rb", "php", "java"},
    ),
    _t(
        "sec.tls",
        r"(?i)^\s*[\"']?(?:ssl_?verify|verify_?ssl|tls_?verify|verify)[\"']?\s*[:=]"
        r"\s*[\"']?(?:false|no|off|0)\b",
        0.7,
        {"config"},
    ),
    _t(
        "sec.weak_hash",
        r"\bhashlib\.(?:md5|sha1)\s*\(",
        0.6,
        {"py"},
        "",
        None,
        r"usedforsecurity\s*=\s*False",
    ),
    _t("sec.weak_hash", r"createHash\(\s*['\"](?:md5|sha1)['\"]", 0.75, {"js"}),
    _t("sec.weak_hash", r"\b(?:md5|sha1)\.(?:New|Sum)\b", 0.7, {"go"}),
    _t(
        "sec.weak_hash",
        r"Digest::(?:MD5|SHA1)|\b(?:md5|sha1)\s*\(|getInstance\(\s*\""
        r"(?:MD5|SHA-?1)\"",
        0.5,
        {"rb", "php", "java"},
    ),
    _t("sec.debug", r"^\s*DEBUG\s*=\s*True\b|\.run\([^)]*\bdebug\s*=\s*True", 0.6, {"py"}),
    _t(
        "sec.debug",
        r"(?i)^\s*(?:export\s+)?[\"']?(?:[\w.]*_)?debug[\"']?\s*[:=]\s*[\"']?"
        r"(?:true|yes|on|1)\b",
        0.6,
        {"config", "sh"},
    ),
    # --- reliability ---
    _t("rel.bare_except", r"^\s*except\s*:", 0.8, {"py"}),
    _t(
        "rel.no_timeout",
        rf"\brequests\.{_HTTP}\s*\(|\burlopen\s*\(",
        0.5,
        {"py"},
        "",
        None,
        r"\btimeout\s*=",
    ),
)

_EXTENSIONS: dict[str, str] = {
    ".py": "py",
    ".pyw": "py",
    ".js": "js",
    ".jsx": "js",
    ".mjs": "js",
    ".cjs": "js",
    ".ts": "js",
    ".tsx": "js",
    ".sh": "sh",
    ".bash": "sh",
    ".go": "go",
    ".rb": "rb",
    ".php": "php",
    ".java": "java",
    ".yml": "config",
    ".yaml": "config",
    ".env": "config",
    ".ini": "config",
    ".cfg": "config",
    ".toml": "config",
    ".json": "config",
    ".conf": "config",
    ".properties": "config",
}
_COMMENT_LINE = re.compile(r"^\s*(?:#|//|/\*|\*|--|;|<!--)")
_SECRET_ASSIGN = re.compile(
    r"(?P<name>[A-Za-z_][\w.-]*)[\"']?\s*(?::=|=>|[:=])\s*(?P<q>[\"'`]?)(?P<value>[^\"'`\s,;#]+)"
    r"(?P=q)"
)
_EMPTY_CATCH = re.compile(r"\bcatch\s*(?:\([^)]*\))?\s*\{\s*\}")
_SET_E = re.compile(r"^\s*set\s+(?:-[a-zA-Z]*e|-o\s+errexit)|^#!.*\s-[a-zA-Z]*e\b", re.M)


def language_for(path: str) -> str | None:
    """Language key for a path by extension (`.env*` files are config); None if unknown."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name.startswith(".env"):
        return "config"
    if "." not in name:
        return None
    return _EXTENSIONS.get("." + name.rsplit(".", 1)[1])


def _line_rules(path: str, lines: list[str], lang: str) -> Iterator[RawFinding]:
    rules = [r for r in TEXT_RULES if lang in r.languages]
    for i, line in enumerate(lines, 1):
        if _COMMENT_LINE.match(line):
            continue
        for rule in rules:
            if rule.pattern.search(line) and not (rule.unless and rule.unless.search(line)):
                yield make_finding(
                    rule.rule,
                    path,
                    lines,
                    i,
                    i,
                    confidence=rule.confidence,
                    severity=rule.severity,
                    extra=rule.extra,
                )
        yield from _secrets_on_line(path, lines, i, line, lang)


def _secrets_on_line(
    path: str, lines: list[str], i: int, line: str, lang: str
) -> Iterator[RawFinding]:
    if AWS_KEY_RE.search(line) or PRIVATE_KEY_RE.search(line):
        return  # dedicated rules below
    for m in _SECRET_ASSIGN.finditer(line):
        name, value = m.group("name").rsplit(".", 1)[-1], m.group("value")
        if value.startswith(("$", "%(", "{", "os.", "process.env", "ENV[", "getenv")):
            continue  # read from the environment/config at runtime: the right thing
        if not m.group("q") and lang not in ("config", "sh"):
            continue  # in code an unquoted value is an identifier/expression, not a literal
        if is_secret_name(name) and is_secret_value(name, value):
            yield make_finding(
                "sec.secret",
                path,
                lines,
                i,
                i,
                confidence=0.6,
                extra=f"`{name}` is set to a literal value.",
                evidence=masked_line(line, value),
            )


def generic_secret_findings(path: str, lines: list[str]) -> Iterator[RawFinding]:
    """AWS key ids and PEM private-key blocks, for every file type (even prose)."""
    for i, line in enumerate(lines, 1):
        for m in AWS_KEY_RE.finditer(line):
            yield make_finding(
                "sec.aws_key",
                path,
                lines,
                i,
                i,
                confidence=0.9,
                evidence=masked_line(line, m.group(0)),
            )
        if PRIVATE_KEY_RE.search(line):
            end = next(
                (j for j in range(i, min(len(lines), i + 200) + 1) if "-----END" in lines[j - 1]), i
            )
            yield make_finding(
                "sec.private_key",
                path,
                lines,
                i,
                end,
                confidence=0.9,
                evidence=line.strip()[:80] + " ... (key body not shown)",
            )


def _whole_file_rules(path: str, text: str, lines: list[str], lang: str) -> Iterator[RawFinding]:
    if lang in ("js", "java", "php", "go"):
        for m in _EMPTY_CATCH.finditer(text):
            start = text.count("\n", 0, m.start()) + 1
            end = text.count("\n", 0, m.end()) + 1
            yield make_finding("rel.empty_catch", path, lines, start, end, confidence=0.85)
    if lang == "sh" and text.strip() and not _SET_E.search(text):
        yield make_finding(
            "rel.no_set_e",
            path,
            lines,
            1,
            1,
            confidence=0.8,
            evidence=lines[0].strip() if lines else "",
        )


def text_findings(path: str, text: str, lines: list[str], lang: str) -> list[RawFinding]:
    """All regex findings for a file of language `lang` (secrets included)."""
    out = list(_line_rules(path, lines, lang))
    out.extend(_whole_file_rules(path, text, lines, lang))
    return out
