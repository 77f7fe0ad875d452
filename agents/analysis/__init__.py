"""Offline static code analysis used by the `heuristic` provider (no LLM, no network).

Public API: `analyze_code(path, text, lens) -> list[RawFinding]`, `RawFinding`, `CODE_LENSES`.
`RULES_BY_LENS` lists the rule ids each lens can report.
"""

from agents.analysis.base import CODE_LENSES, RULES, RULES_BY_LENS, RawFinding
from agents.analysis.engine import analyze_code

__all__ = ["CODE_LENSES", "RULES", "RULES_BY_LENS", "RawFinding", "analyze_code"]
