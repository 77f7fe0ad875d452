"""Adaptive fan-out's decisions, as pure functions: more agents where scouts found more and more
severe findings, none where they found nothing or only repeats, never past max agents or the
budget; the option's values; the scouts' sample."""

from __future__ import annotations

from typing import Any

import pytest

from agents.adaptive import Seen, Unit, decide, parse_flag, redundant, scout_units


def _seen(task: int, severity: str = "high", code: str = "", rule: str = "sec.eval") -> Seen:
    return Seen(task, rule, severity, code or f"return eval(value_{task})")


def _decide(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "where": "web/",
        "wave": 0,
        "last_agents": 6,
        "last_units": 2,
        "known": [],
        "new": [],
        "units_left": 8,
        "lenses": 3,
        "agents_allowed": 1000,
        "agents_affordable": None,
    }
    return decide(**{**args, **overrides})


def test_scouts_that_find_nothing_stop_their_group_and_say_it_was_sampled() -> None:
    decision = _decide()
    assert decision.units == 0
    assert decision.reason == (
        "no more agents in web/: scouts read 2 of 10 chunks and found nothing: the other 8 "
        "stay unread (sampled, not read in full)"
    )


def test_more_and_more_severe_findings_earn_more_agents() -> None:
    low = _decide(new=[_seen(1, "low")])
    high = _decide(new=[_seen(1, "high"), _seen(2, "high", "pickle.loads(blob)")])
    assert 0 < low.units < high.units
    assert high.reason.startswith(f"{high.units * 3} more agents in web/: scouts found 2 new")
    assert "(2 high)" in high.reason


def test_a_wave_bounded_by_max_agents_or_the_budget_says_which() -> None:
    many = [_seen(i, "critical", f"eval(x_{i} + y)") for i in range(6)]
    capped = _decide(new=many, agents_allowed=7)
    assert capped.units == 2 and "bounded by max agents" in capped.reason
    broke = _decide(new=many, agents_affordable=3)
    assert broke.units == 1 and "bounded by the budget left" in broke.reason
    none = _decide(new=many, agents_allowed=2)
    assert none.units == 0 and "max agents reached" in none.reason


def test_a_wave_that_repeats_known_findings_stops_the_group() -> None:
    known = [_seen(1, code="return pickle.loads(reply_blob)", rule="sec.deserialize")]
    again = [
        _seen(5, code="return pickle.loads(reply_blob)", rule="sec.deserialize"),
        _seen(6, code="return pickle.loads(reply_blob)", rule="sec.deserialize"),
        _seen(7, code='subprocess.call("tar " + archive_path, shell=True)', rule="sec.shell"),
    ]
    decision = _decide(wave=1, known=known, new=again, last_units=3, last_agents=9)
    assert decision.units == 0 and decision.repeated == 2
    assert "67% of what the last 9 agents found repeats known findings" in decision.reason


def test_the_same_rule_at_different_code_is_new_and_one_agent_never_repeats_itself() -> None:
    known = [_seen(1, code='return db.execute("SELECT * FROM users WHERE n = %s" % name)')]
    new = [
        _seen(2, code="return eval(order_text)"),
        _seen(3, code='subprocess.call("gzip " + ledger_raw, shell=True)', rule="sec.shell"),
        _seen(4, code="return eval(order_text)", rule="sec.eval"),  # agent 2's again
    ]
    assert redundant(known, new) == [False, False, True]
    assert redundant([], [_seen(9, code="x = eval(a)"), _seen(9, code="x = eval(a)")]) == [
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("value", "flag"),
    [(True, True), (False, False), ("true", True), ("off", False), (1, True), (0, False)],
)
def test_the_option_takes_a_clear_yes_or_no(value: Any, flag: bool) -> None:
    assert parse_flag(value) is flag


@pytest.mark.parametrize("value", ["maybe", 2, [True], None, 0.5])
def test_anything_else_is_not_a_yes_or_no(value: Any) -> None:
    assert parse_flag(value) is None


def test_scouts_are_a_fifth_of_a_group_at_least_two_seeded_by_the_snapshot() -> None:
    units = [Unit(f"f{i}.py", (f"k{i}",)) for i in range(25)]
    first = scout_units("web", units, "digest-a")
    assert len(first) == 5  # ceil(25 / 5)
    assert first == scout_units("web", units, "digest-a")
    picks = {tuple(u.scope_label for u in scout_units("web", units, f"d{i}")) for i in range(8)}
    assert len(picks) > 1  # not always the first files by name
    assert len(scout_units("small", units[:6], "digest-a")) == 2
    assert len(scout_units("tiny", units[:1], "digest-a")) == 1
