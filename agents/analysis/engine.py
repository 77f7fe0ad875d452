"""Entry point of the offline `heuristic` analyzer: picks the ast or regex path per file."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from agents.analysis.bandit_lens import bandit_findings
from agents.analysis.base import CODE_LENSES, make_finding
from agents.analysis.finding import RawFinding
from agents.analysis.py_access import check_access
from agents.analysis.py_api import check_api
from agents.analysis.py_context import PyContext
from agents.analysis.py_flows import check_flows, drop_constant_xml
from agents.analysis.py_framework import check_framework
from agents.analysis.py_http import check_http
from agents.analysis.py_maintainability import check_maintainability, todo_findings
from agents.analysis.py_reliability import check_reliability
from agents.analysis.py_security import check_security, falsy_shell_lines
from agents.analysis.py_settings import check_settings
from agents.analysis.py_taint import flows
from agents.analysis.ranking import merge_bandit
from agents.analysis.suppression import Suppressed, split_suppressed
from agents.analysis.template_rules import is_template, template_findings
from agents.analysis.text_rules import generic_secret_findings, language_for, text_findings

MAX_FILE_LINES = 800
# Beyond this only the first MAX_ANALYZED_CHARS are analysed, keeping one call bounded.
MAX_ANALYZED_CHARS = 2_000_000
_BINARY_RATIO = 0.1


def _looks_binary(text: str) -> bool:
    """NUL bytes or >10% control/replacement characters in the first 8 KiB."""
    sample = text[:8192]
    if "\x00" in sample:
        return True
    bad = sum(1 for c in sample if (ord(c) < 32 and c not in "\t\n\r\f\v") or c == "\ufffd")
    return bool(sample) and bad / len(sample) > _BINARY_RATIO


def _security(ctx: PyContext) -> Iterator[RawFinding]:
    # Our ast rules + the framework rules first, then bandit's issues merged in (one finding
    # per weakness and line when both report it).
    all_flows = flows(ctx)
    ours = [
        *check_security(ctx),
        *check_framework(ctx),
        *check_flows(ctx, all_flows),
        *check_http(ctx, all_flows),
        *check_access(ctx),
        *check_settings(ctx, all_flows),
        *check_api(ctx, all_flows),
    ]
    no_shell = falsy_shell_lines(ctx)
    theirs = drop_constant_xml(
        ctx,
        [
            f
            for f in bandit_findings(ctx.path, "\n".join(ctx.lines), ctx.lines)
            if not (f.rule in ("bandit.B602", "bandit.B604") and f.line_start in no_shell)
        ],
    )
    yield from merge_bandit(ours, theirs)


_PY_CHECKS = {
    "security": _security,
    "reliability": check_reliability,
    "maintainability": check_maintainability,
}


def _python_findings(path: str, text: str, lines: list[str], lens: str) -> list[RawFinding]:
    """ast rules of `lens` when the file parses; otherwise the regex fallback (lower
    confidence). Only the requested lens runs, since the ast walks dominate the cost."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for invalid escapes
            tree = ast.parse(text, filename=path)
        ctx = PyContext.build(path, lines, tree)
        out = list(_PY_CHECKS[lens](ctx))
        if lens == "maintainability":
            out += todo_findings(path, lines, text, python=True)
        return out
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # Not valid Python (or pathologically deep): fall back to line regexes.
        return text_findings(path, text, lines, "py") + todo_findings(
            path, lines, text, python=False
        )


@dataclass
class Analysis:
    """What one file gave through one lens: active findings, and the ones a `# nosec` /
    `# noqa: S…` marker covers (kept so the report can show them, never deleted)."""

    findings: list[RawFinding] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)


def analyze_code(path: str, text: str, lens: str) -> list[RawFinding]:
    """Active findings of `analyze_file` (suppressed ones left out)."""
    return analyze_file(path, text, lens).findings


def analyze_file(path: str, text: str, lens: str) -> Analysis:
    """Statically analyse one file's text through one lens and return its findings.

    Contract:
    - `lens` must be one of CODE_LENSES, else ValueError.
    - Never raises on bad input: empty text gives [], binary-looking text gives [], Python
      that does not parse is analysed with regex rules, text beyond 2,000,000 characters is
      ignored (the file-length rule still counts every line).
    - `.py` files use the ast (the security lens adds bandit and the framework rules);
      templates (.html/.jinja/.j2) get the template rules; .js/.ts/.sh/.go/.rb/.php/.java
      and config files (.yml/.yaml/.env/.ini/.cfg/.toml/.json) use regex rules; any other
      file is only scanned for AWS key ids and private-key blocks (and its length).
    - Deterministic: sorted by (line_start, rule, line_end, detail), at most one finding per
      (rule, line_start). Security findings under a `# nosec` / `# noqa: S…` marker are
      moved to `suppressed`.
    """
    if lens not in CODE_LENSES:
        raise ValueError(f"unknown lens {lens!r}; expected one of {', '.join(CODE_LENSES)}")
    if not isinstance(text, str) or not text.strip() or _looks_binary(text):
        return Analysis()
    total_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    text = text[:MAX_ANALYZED_CHARS]
    lines = text.splitlines()
    lang = language_for(path)
    if lang == "py":
        found = _python_findings(path, text, lines, lens)
    elif lang is not None:
        found = text_findings(path, text, lines, lang) + todo_findings(
            path, lines, text, python=False
        )
    elif is_template(path) and lens == "security":
        found = list(template_findings(path, text, lines))
    else:
        found = []
    found.extend(generic_secret_findings(path, lines))
    if lang is not None and total_lines > MAX_FILE_LINES:
        found.append(
            make_finding(
                "mnt.long_file",
                path,
                lines,
                1,
                total_lines,
                confidence=0.95,
                evidence=lines[0].strip() if lines else "",
                extra=f"The file has {total_lines} lines (limit {MAX_FILE_LINES}).",
            )
        )
    unique: dict[tuple[str, int], RawFinding] = {}
    for f in sorted(found, key=lambda f: (f.line_start, f.rule, f.line_end, f.detail)):
        if f.lens == lens:
            unique.setdefault((f.rule, f.line_start), f)
    active, suppressed = split_suppressed(list(unique.values()), text, lines, python=lang == "py")
    return Analysis(active, suppressed)
