"""Offline static code analysis used by the `heuristic` provider (no LLM, no network).

Public API: `analyze_file(path, text, lens) -> Analysis` (findings + suppressed),
`analyze_code(...)` (active findings only), `vendored_reason(path)`, `RawFinding`, `CODE_LENSES`.
`RULES_BY_LENS` lists the rule ids each lens can report.
"""

from agents.analysis.base import CODE_LENSES, RULES, RULES_BY_LENS
from agents.analysis.engine import Analysis, analyze_code, analyze_file
from agents.analysis.finding import RawFinding
from agents.analysis.vendored import vendored_reason

__all__ = [
    "CODE_LENSES",
    "RULES",
    "RULES_BY_LENS",
    "Analysis",
    "RawFinding",
    "analyze_code",
    "analyze_file",
    "vendored_reason",
]
