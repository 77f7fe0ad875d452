"""Simulated model latency for the offline analyzer: what ``--latency-ms`` stands in for.

A fixed latency measures the harness against an ideal of ceil(N/C)·L. Real models answer with a
long tail, so ``--latency-sigma`` draws each agent's latency from a log-normal distribution whose
median is ``--latency-ms``: deterministic per agent (from its key), so a benchmark's peers can be
given exactly the same per-agent latencies.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

MAX_LATENCY_MS = 600_000
MAX_SIGMA = 3.0
_STANDARD = NormalDist()


def agent_latency_ms(median_ms: int, sigma: float, key: str) -> int:
    """The agent's simulated latency: ``median_ms`` when ``sigma`` is 0, else a log-normal
    draw with that median and shape ``sigma``, seeded by ``key`` (capped at 10 minutes)."""
    if sigma <= 0 or median_ms <= 0:
        return median_ms
    digest = hashlib.sha256(key.encode()).digest()
    # A uniform in (0, 1), never 0 or 1 (inv_cdf refuses them).
    uniform = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    z = _STANDARD.inv_cdf(uniform)
    return min(MAX_LATENCY_MS, round(median_ms * math.exp(sigma * z)))
