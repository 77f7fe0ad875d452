"""Simulated latency: fixed by default; a log-normal mix with the asked median when a sigma is
given, the same draw for the same agent every time (so a benchmark's peers can replay it)."""

from __future__ import annotations

import statistics

from agents.latency import MAX_LATENCY_MS, agent_latency_ms


def test_no_sigma_is_the_fixed_latency() -> None:
    assert {agent_latency_ms(1000, 0, f"key-{i}") for i in range(50)} == {1000}
    assert agent_latency_ms(0, 1.5, "key") == 0


def test_a_sigma_draws_a_long_tailed_mix_around_the_median() -> None:
    draws = [agent_latency_ms(5000, 1.0, f"agent-{i}") for i in range(4000)]
    assert 4500 <= statistics.median(draws) <= 5500
    ordered = sorted(draws)
    p99 = ordered[int(0.99 * len(ordered))]
    assert p99 > 40_000  # exp(2.33) is about 10 times the median: a long tail
    assert min(draws) > 0 and max(draws) <= MAX_LATENCY_MS


def test_each_agent_gets_the_same_draw_every_time() -> None:
    assert agent_latency_ms(1000, 1.0, "abc") == agent_latency_ms(1000, 1.0, "abc")
    assert agent_latency_ms(1000, 1.0, "abc") != agent_latency_ms(1000, 1.0, "abd")
