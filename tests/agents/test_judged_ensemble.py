"""A judged ensemble without a database: its plan (judges, both orders, dependencies, the
refusals), the offline judge's consistency, the tally against a hand computation, and the
strict answer shapes."""

from __future__ import annotations

from itertools import permutations
from typing import Any

import pytest

from agents.judging.answers import split_answer
from agents.judging.offline import judge_offline, merit
from agents.judging.plan import PAIR_STEP, RUBRIC_STEP
from agents.judging.report import judging_markdown
from agents.judging.tally import PairVote, RubricVote, pairwise_tally, rubric_tally
from agents.planning import PlanningError, plan
from agents.playbooks import PLAYBOOKS
from agents.snapshot import SnapshotError
from runs.rendering import render_markdown

MANIFEST: dict[str, Any] = {
    "digest": "d" * 64,
    "files": {f"pkg/mod{i}.py": {"size": 400 + i} for i in range(6)},
}


def _judged(**options: Any) -> Any:
    return PLAYBOOKS["ensemble"].with_overrides(options={"mode": "judge", **options})


def test_pairwise_plans_two_judges_per_pair_one_per_order_after_both_candidates() -> None:
    specs = plan(_judged(k=4), MANIFEST)
    voters = [s for s in specs if s.step.startswith("vote-")]
    judges = [s for s in specs if s.step == PAIR_STEP]
    assert len(voters) == 4 and len(judges) == 4 * 3
    keys = {int(s.scope["voter"]): s.key for s in voters}
    orders = sorted((s.scope["a"], s.scope["b"]) for s in judges)
    assert orders == sorted(permutations(range(4), 2))  # every pair in both orders, once
    for judge in judges:
        assert judge.role == "referee" and judge.group == "judges"
        assert set(judge.depends_on) == {keys[judge.scope["a"]], keys[judge.scope["b"]]}
    # The vote mode is unchanged: no judges.
    assert all(s.step.startswith("vote-") for s in plan(PLAYBOOKS["ensemble"], MANIFEST))


def test_rubric_plans_one_judge_per_candidate() -> None:
    specs = plan(_judged(k=3, judging="rubric"), MANIFEST)
    judges = [s for s in specs if s.step == RUBRIC_STEP]
    assert sorted(s.scope["candidate"] for s in judges) == [0, 1, 2]
    by_voter = {int(s.scope["voter"]): s.key for s in specs if "voter" in s.scope}
    assert all(j.depends_on == (by_voter[j.scope["candidate"]],) for j in judges)


def test_pairwise_refuses_more_than_eight_candidates_and_bad_modes() -> None:
    assert len(plan(_judged(k=8), MANIFEST)) == 8 + 56
    with pytest.raises(PlanningError, match="9 candidates needs 72 judges; it takes at most 8"):
        plan(_judged(k=9), MANIFEST)
    assert len(plan(_judged(k=9, judging="rubric"), MANIFEST)) == 18
    with pytest.raises(PlanningError, match="mode must be one of vote, judge"):
        plan(PLAYBOOKS["ensemble"].with_overrides(options={"mode": "jury"}), MANIFEST)
    with pytest.raises(PlanningError, match="judging must be one of pairwise, rubric"):
        plan(_judged(judging="borda"), MANIFEST)


class Source:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise SnapshotError(path)
        return self.files[path]


CODE = Source({"app.py": "import os\n\npassword = 'hunter2'\nos.system(cmd)\n"})
GOOD = {
    "findings": [
        {"severity": "high", "path": "app.py", "line_start": 3, "evidence": "password = 'hunter2'"},
        {"severity": "high", "path": "app.py", "line_start": 4, "evidence": "os.system(cmd)"},
    ]
}
# The same number of findings, but one invented quote and one line that does not exist.
INVENTED = {
    "findings": [
        {"severity": "high", "path": "app.py", "line_start": 3, "evidence": "eval(request)"},
        {"severity": "critical", "path": "app.py", "line_start": 40, "evidence": "x"},
        {"severity": "medium", "path": "app.py", "line_start": 4, "evidence": ""},
    ]
}


def test_the_offline_judge_prefers_evidence_and_agrees_with_itself_in_both_orders() -> None:
    assert merit(GOOD, CODE).score == 6.0  # two verified high findings
    assert merit(INVENTED, CODE).score == -3.0 - 4.0 + 1.0  # two unsupported, one located
    first = judge_offline(PAIR_STEP, {"A": GOOD, "B": INVENTED}, CODE)
    second = judge_offline(PAIR_STEP, {"A": INVENTED, "B": GOOD}, CODE)
    assert (first["winner"], second["winner"]) == ("A", "B")  # the same candidate both times
    assert "2 with their quote found" in first["reason"]
    tie = judge_offline(PAIR_STEP, {"A": GOOD, "B": dict(GOOD)}, CODE)
    assert tie["winner"] == "tie"
    assert judge_offline(PAIR_STEP, {"A": GOOD, "B": INVENTED}, CODE) == first  # deterministic
    # Rubric: precision 1 and merit 6 -> 1 + 2 + 1; nothing supported -> 1 + 0 + 0 (+1 located)
    assert judge_offline(RUBRIC_STEP, {"candidate": GOOD}, CODE)["score"] == 4
    assert judge_offline(RUBRIC_STEP, {"candidate": INVENTED}, CODE)["score"] == 2
    assert judge_offline(RUBRIC_STEP, {"candidate": {"findings": []}}, CODE)["score"] == 1
    # An agent's note that it dropped findings at its output limit is no claim: it weighs 0.
    note = {"severity": "info", "path": "app.py", "rule": "meta.output_cap", "evidence": ""}
    assert merit({"findings": [*GOOD["findings"], note]}, CODE) == merit(GOOD, CODE)


def test_pairwise_tally_matches_a_hand_computation() -> None:
    # Pair (0,1): each order prefers the candidate shown first (pure position bias) -> a draw.
    # Pair (0,2): both orders pick 0.  Pair (1,2): both orders pick 2.
    votes = [
        PairVote(0, 1, 0),
        PairVote(1, 0, 1),
        PairVote(0, 2, 0),
        PairVote(2, 0, 0),
        PairVote(1, 2, 2),
        PairVote(2, 1, 2),
    ]
    result = pairwise_tally([0, 1, 2], votes)
    # Copeland: 0 = 1 (vs 2) + 0.5 (draw vs 1); 2 = 1 (vs 1); 1 = 0.5.
    assert [(r["candidate"], r["copeland"], r["votes_won"]) for r in result["ranking"]] == [
        (0, 1.5, 3),
        (2, 1.0, 2),
        (1, 0.5, 1),
    ]
    assert result["winner"] == 0
    assert result["order_agreement"] == round(2 / 3, 4)
    # Nominal alpha by hand: values per pair (lower first, higher first) = (0,1), (0,0), (1,1);
    # coincidences o00 = 2, o11 = 2, o01 = o10 = 1, n = 6, n0 = n1 = 3:
    # Do = 2/6, De = 2*3*3 / (6*5) = 0.6, alpha = 1 - (1/3)/0.6 = 4/9.
    assert result["alpha"] == round(4 / 9, 4)
    # Votes-won breaks a Copeland tie; then the lower voter number.
    tied = pairwise_tally([0, 1], [PairVote(0, 1, None), PairVote(1, 0, 1)])
    assert tied["winner"] == 1 and tied["pairs"][0]["winner"] == 1
    assert pairwise_tally([0, 1], [PairVote(0, 1, 0), PairVote(1, 0, 1)])["winner"] == 0


def test_rubric_tally_takes_the_highest_mean() -> None:
    result = rubric_tally([0, 1, 2], [RubricVote(0, 3), RubricVote(1, 5), RubricVote(2, 5)])
    assert result["winner"] == 1  # tie on 5 goes to the lower voter number
    assert [r["mean"] for r in result["ranking"]] == [5.0, 5.0, 3.0]
    assert result["alpha"] is None


def test_answers_are_strict_and_the_report_section_is_inert() -> None:
    fields, problem = split_answer(PAIR_STEP, {"winner": "A", "reason": "A quotes its lines"})
    assert problem == "" and fields["data"] == {"winner": "A", "reason": "A quotes its lines"}
    assert split_answer(PAIR_STEP, {"winner": "C", "reason": "x"})[1].startswith("winner:")
    assert split_answer(RUBRIC_STEP, {"score": 9, "reason": "x"})[1].startswith("score:")
    result = pairwise_tally([0, 1], [PairVote(0, 1, 0), PairVote(1, 0, 0)])
    result.update(
        judging="pairwise",
        candidates=[
            {"candidate": 0, "findings": 2, "summary": "s"},
            {"candidate": 1, "findings": 0},
        ],
        votes=[
            {
                "judge": "judge #7",
                "shown": "A = voter 1",
                "vote": "A",
                "reason": "[x](http://e.vil) <b>",
            }
        ],
    )
    text = judging_markdown(result, judged_by="offline judges (heuristic checks, not an LLM)")
    assert "winner by copeland: **voter 1**" in text and "not an LLM" in text
    html = render_markdown(text)  # as the report page shows it: the reason is inert
    assert "<a " not in html and "<b>" not in html and "e.vil" in html
    assert "both orders of a pair agreed in 1.00" in text


def test_voters_take_the_listed_models_in_turn_and_a_bad_name_is_refused() -> None:
    specs = plan(_judged(k=4, voter_models="gpt-4o-mini, qwen2.5:7b"), MANIFEST)
    models = {int(s.scope["voter"]): s.model for s in specs if s.step.startswith("vote-")}
    assert models == {0: "gpt-4o-mini", 1: "qwen2.5:7b", 2: "gpt-4o-mini", 3: "qwen2.5:7b"}
    assert all(s.model == "" for s in specs if not s.step.startswith("vote-"))  # judges: role's
    assert {s.model for s in plan(_judged(k=2), MANIFEST)} == {""}  # unset: the role's model
    with pytest.raises(PlanningError, match="voter_models: 'gpt 4' is not a model name"):
        plan(_judged(k=2, voter_models="gpt-4o,gpt 4"), MANIFEST)
    result = {
        "judging": "rubric",
        "winner": 0,
        "method": "mean rubric score",
        "candidates": [{"candidate": 0, "model": "qwen2.5:7b", "findings": 2, "summary": "x"}],
        "ranking": [{"candidate": 0, "mean": 4.0}],
        "votes": [],
    }
    text = judging_markdown(result, judged_by="judges")
    row = next(line for line in text.splitlines() if line.startswith("| voter 1 |"))
    assert "qwen2.5:7b" in row and "| 2 |" in row
    assert "1 candidate judged" in text
