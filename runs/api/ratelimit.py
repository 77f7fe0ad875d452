"""The rate limit of each API token: so many requests a minute (the token's own
``rate_per_minute``, else ``HARNESS_API_RATE_PER_MINUTE``), counted in Redis so every web
process shares the count. A fixed one-minute window: simple, and a burst at a window's edge of
at most twice the rate is harmless here."""

from __future__ import annotations

import logging
import math
import time

import redis
from django.conf import settings

from harness_site.redis_client import get_redis
from runs.api.problems import Problem
from runs.models import ApiToken

logger = logging.getLogger(__name__)

WINDOW_S = 60


def check_rate(token: ApiToken) -> None:
    """Count one request of ``token``; a Problem 429 (with Retry-After) past its limit."""
    now = time.time()
    window = int(now // WINDOW_S)
    key = f"{settings.HARNESS_REDIS_PREFIX}api-rate:{token.pk}:{window}"
    try:
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count = int(pipe.execute()[0])
    except redis.RedisError as exc:
        # The limit guards the server from a runaway client; Redis being away is an outage of
        # its own (no run moves), and refusing every API call on top would not help.
        logger.warning("API rate limit not checked: %s", type(exc).__name__)
        return
    limit = token.rate_limit
    if count > limit:
        retry = max(1, math.ceil((window + 1) * WINDOW_S - now))
        raise Problem(
            429,
            f"Rate limit: this token may make {limit} requests a minute; retry in {retry} s.",
            code="rate-limited",
            headers={"Retry-After": str(retry)},
            limit=limit,
        )
