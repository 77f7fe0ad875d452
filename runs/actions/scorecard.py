"""An evaluation run's scorecard, from its judges' stored answers (``agents.evaluation``)."""

from __future__ import annotations

from typing import Any

from agents.aggregation.stages import ReportDraft
from agents.evaluation.judge import JUDGE_STEP
from agents.evaluation.scorecard import Judgement, build_scorecard
from agents.evaluation.summary import scorecard_markdown
from runs.models import Run, Task


def judgements(run: Run) -> tuple[list[Judgement], list[str]]:
    """Every answered judge of the run, and the dimensions in planned order."""
    rows = (
        Task.objects.filter(run=run, step=JUDGE_STEP)
        .order_by("id")
        .values_list("lens", "status", "scope", "output")
    )
    dimensions: list[str] = []
    found = []
    for lens, status, scope, output in rows:
        if lens not in dimensions:
            dimensions.append(lens)
        data = (output or {}).get("data") or {}
        if status != Task.Status.SUCCEEDED or "score" not in data:
            continue
        found.append(
            Judgement(
                variant=str(scope.get("variant") or ""),
                item=str(scope.get("item")),
                dimension=lens,
                rater=f"judge-{int(scope.get('judge') or 0)}",
                score=data["score"] if isinstance(data["score"], int) else None,
                rationale=str(data.get("rationale", ""))[:2000],
            )
        )
    return found, dimensions


def run_scorecard(run: Run) -> dict[str, Any]:
    found, dimensions = judgements(run)
    judges = int(run.resolved_playbook.options.get("judges") or 1)
    return build_scorecard(found, dimensions, judges_per_cell=judges)


def add_scorecard(run: Run, draft: ReportDraft, *, is_llm: bool) -> None:
    """Put the scorecard in the report version (``params["scorecard"]``) and its table at the
    top of the report's text."""
    card = run_scorecard(run)
    draft.params["scorecard"] = card
    draft.markdown = scorecard_markdown(card, is_llm=is_llm) + "\n" + draft.markdown
