"""The judges of a judged ensemble, planned after its candidates (the voters)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

PAIR_STEP = "judge-pair"
RUBRIC_STEP = "judge-rubric"
JUDGE_STEPS = (PAIR_STEP, RUBRIC_STEP)
MODES = ("vote", "judge")
JUDGINGS = ("pairwise", "rubric")
# Pairwise judging grows as K x (K - 1): 8 candidates already take 56 judges.
MAX_PAIRWISE_CANDIDATES = 8
MAX_PAIRWISE_JUDGES = MAX_PAIRWISE_CANDIDATES * (MAX_PAIRWISE_CANDIDATES - 1)
JUDGE_GROUP = "judges"


class JudgingError(ValueError):
    """The options ask for a judging this plan refuses (a user-facing message)."""


def judging_of(options: dict[str, Any]) -> str | None:
    """``pairwise`` or ``rubric`` when the ensemble is judged, None when it votes."""
    mode = str(options.get("mode") or "vote")
    if mode not in MODES:
        raise JudgingError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
    if mode != "judge":
        return None
    judging = str(options.get("judging") or "pairwise")
    if judging not in JUDGINGS:
        raise JudgingError(f"judging must be one of {', '.join(JUDGINGS)}, not {judging!r}.")
    return judging


def choice_problem(options: dict[str, Any]) -> tuple[str, str] | None:
    """(message, option name) of the first of ``mode`` and ``judging`` set to a value neither
    takes, for the launch to refuse on that option's field; None when both are fine."""
    for name, allowed in (("mode", MODES), ("judging", JUDGINGS)):
        if name in options and options[name] not in allowed:
            return f"{name} must be one of {', '.join(allowed)}, not {options[name]!r}.", name
    return None


# (step, scope, label, why, depends_on) of one judge; the planner makes a TaskSpec of it.
JudgeTask = tuple[str, dict[str, Any], str, str, tuple[str, ...]]


def judge_tasks(
    judging: str, candidates: dict[int, tuple[str, ...]], label: Callable[[int], str]
) -> list[JudgeTask]:
    """``candidates``: voter index → the keys of its tasks. Pairwise: for each pair i < j one
    judge sees (i, j) and another (j, i); rubric: one judge per candidate."""
    k = len(candidates)
    if judging == "rubric":
        return [
            (
                RUBRIC_STEP,
                {"judging": "rubric", "candidate": i},
                f"rubric · {label(i)}",
                f"score {label(i)} on the rubric",
                keys,
            )
            for i, keys in sorted(candidates.items())
        ]
    if k > MAX_PAIRWISE_CANDIDATES:
        raise JudgingError(
            f"Pairwise judging of {k} candidates needs {k * (k - 1)} judges; it takes at most "
            f"{MAX_PAIRWISE_CANDIDATES} candidates ({MAX_PAIRWISE_JUDGES} judges). Lower k or "
            "use judging = rubric."
        )
    if k < 2:
        raise JudgingError("Pairwise judging needs at least 2 candidates (k >= 2).")
    tasks: list[JudgeTask] = []
    for i, j in combinations(sorted(candidates), 2):
        for a, b in ((i, j), (j, i)):
            tasks.append(
                (
                    PAIR_STEP,
                    {"judging": "pairwise", "a": a, "b": b},
                    f"{label(a)} vs {label(b)}",
                    f"judge {label(a)} (shown as A) against {label(b)} (shown as B)",
                    candidates[i] + candidates[j],
                )
            )
    return tasks
