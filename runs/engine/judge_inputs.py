"""What a judged ensemble's judge reads: the candidates its task depends on (each voter's
summary and stored findings), shown as A and B in the order its scope names, or alone."""

from __future__ import annotations

from typing import Any

from agents.judging.answers import MAX_FINDINGS_SHOWN
from runs.models import Finding, Task

_SHOWN = ("title", "severity", "confidence", "path", "line_start", "line_end", "evidence", "rule")
_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _candidate(voter: int, tasks: list[Task]) -> dict[str, Any]:
    mine = [t for t in tasks if int((t.scope or {}).get("voter", -1)) == voter]
    findings = list(Finding.objects.filter(task__in=mine).order_by("id").values(*_SHOWN))
    findings.sort(key=lambda f: (_ORDER.get(f["severity"], 5), -f["confidence"]))
    return {
        "label": f"voter {voter + 1}",
        "answered": bool(mine),
        "summary": " ".join(t.summary for t in mine)[:2000],
        "findings": findings[:MAX_FINDINGS_SHOWN],
        "findings_total": len(findings),
    }


def judge_inputs(task: Task) -> dict[str, Any]:
    scope = task.scope or {}
    deps = list(task.depends_on.filter(status=Task.Status.SUCCEEDED).order_by("id"))
    if scope.get("judging") == "rubric":
        return {"candidates": {"candidate": _candidate(int(scope["candidate"]), deps)}}
    return {
        "candidates": {
            "A": _candidate(int(scope["a"]), deps),
            "B": _candidate(int(scope["b"]), deps),
        }
    }
