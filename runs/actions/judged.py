"""A judged ensemble's result, from its judges' stored answers (``agents.judging``): the winner
whose findings become the report's, and the report's section on how it was chosen."""

from __future__ import annotations

from typing import Any

from agents.aggregation.records import FindingRow
from agents.aggregation.stages import ReportDraft, RunFacts
from agents.judging.plan import JUDGE_STEPS, PAIR_STEP, judging_of
from agents.judging.report import judging_markdown
from agents.judging.tally import PairVote, RubricVote, pairwise_tally, rubric_tally
from agents.providers.catalog import get_provider
from runs.models import Finding, Run, Task


def _judged_by(tasks: list[Task]) -> str:
    if not tasks:
        return "no judges"
    first = tasks[0]
    try:
        is_llm = bool(get_provider(first.provider).is_llm)
    except Exception:
        is_llm = False
    if not is_llm:
        return "offline judges (heuristic checks, not an LLM)"
    model = (first.output or {}).get("model") or first.model or first.provider
    return f"language-model judges ({model})"


def judged_result(run: Run) -> dict[str, Any] | None:
    """None for an ensemble that votes (or any other playbook)."""
    playbook = run.resolved_playbook
    if playbook.decomposition != "ensemble":
        return None
    judging = judging_of(playbook.options)
    if judging is None:
        return None
    tasks = list(Task.objects.filter(run=run).order_by("id"))
    voters = [t for t in tasks if "voter" in (t.scope or {}) and t.step not in JUDGE_STEPS]
    judges = [t for t in tasks if t.step in JUDGE_STEPS]
    by_voter: dict[int, list[Task]] = {}
    for task in voters:
        by_voter.setdefault(int(task.scope["voter"]), []).append(task)
    candidates = sorted(by_voter)
    pair_votes: list[PairVote] = []
    rubric_votes: list[RubricVote] = []
    shown: list[dict[str, Any]] = []
    unanswered = 0
    for task in judges:
        data = (task.output or {}).get("data") or {}
        scope, name = task.scope or {}, f"judge #{task.pk}"
        reason = str(data.get("reason", ""))[:2000]
        if task.status != Task.Status.SUCCEEDED or not ("winner" in data or "score" in data):
            unanswered += 1
            continue
        if task.step == PAIR_STEP:
            a, b = int(scope["a"]), int(scope["b"])
            winner = {"A": a, "B": b}.get(str(data["winner"]))
            pair_votes.append(PairVote(a, b, winner, name, reason))
            vote = "tie" if winner is None else f"{data['winner']} (voter {winner + 1})"
            shown.append(
                {
                    "judge": name,
                    "shown": f"A = voter {a + 1}, B = voter {b + 1}",
                    "vote": vote,
                    "reason": reason,
                }
            )
        else:
            cand = int(scope["candidate"])
            rubric_votes.append(RubricVote(cand, int(data["score"]), name, reason))
            shown.append(
                {
                    "judge": name,
                    "shown": f"voter {cand + 1}",
                    "vote": f"{data['score']}/5",
                    "reason": reason,
                }
            )
    if judging == "pairwise":
        result = pairwise_tally(candidates, pair_votes)
    else:
        result = rubric_tally(candidates, rubric_votes)
    counts = _finding_counts(run)
    winner = result["winner"]
    result.update(
        judging=judging,
        judged_by=_judged_by(judges),
        votes=shown,
        unanswered=unanswered,
        candidates=[
            {
                "candidate": c,
                "findings": sum(counts.get(t.pk, 0) for t in by_voter[c]),
                "summary": " ".join(t.summary for t in by_voter[c])[:300],
                "status": ", ".join(sorted({t.status for t in by_voter[c]})),
                "model": ", ".join(sorted({t.model for t in by_voter[c] if t.model})),
            }
            for c in candidates
        ],
        winner_tasks=[t.pk for t in by_voter.get(winner, [])] if winner is not None else [],
    )
    return result


def _finding_counts(run: Run) -> dict[int, int]:
    counts: dict[int, int] = {}
    for task_id in Finding.objects.filter(run=run).values_list("task_id", flat=True):
        counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def winner_rows(
    result: dict[str, Any], rows: list[FindingRow], facts: RunFacts
) -> list[FindingRow]:
    """The winning candidate's findings; one candidate is one voter, so every finding of it
    passes the vote quorum."""
    facts.options["vote_quorum"] = 1
    keep = set(result["winner_tasks"])
    return [row for row in rows if row.task_id in keep]


def add_judging(result: dict[str, Any], draft: ReportDraft) -> None:
    """Put the result in the version (``params["judging"]``) and its section at the top."""
    draft.params["judging"] = result
    draft.markdown = judging_markdown(result, judged_by=result["judged_by"]) + "\n" + draft.markdown
