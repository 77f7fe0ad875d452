"""The rate limit of each API token: so many requests a minute (the token's own
``rate_per_minute``, else ``HARNESS_API_RATE_PER_MINUTE``), counted in Redis so every web
process shares the count. A fixed one-minute window: simple, and a burst at a window's edge of
at most twice the rate is harmless here.

Every answer to a token-signed request says where the token stands, in the IETF draft's
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds) headers, so a
script can slow down before it is refused rather than after."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from harness_site.redis_client import get_redis
from runs.api.problems import Problem
from runs.models import ApiToken

logger = logging.getLogger(__name__)

WINDOW_S = 60


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


def check_rate(token: ApiToken, request: HttpRequest | None = None) -> None:
    """Count one request of ``token``; a Problem 429 (with Retry-After) past its limit. The
    token's standing is left on ``request`` for ``RateLimitHeaders``."""
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
    reset = max(1, math.ceil((window + 1) * WINDOW_S - now))
    state = RateState(limit, max(0, limit - count), reset)
    if request is not None:
        request.harness_rate = state  # type: ignore[attr-defined]
    if count > limit:
        raise Problem(
            429,
            f"Rate limit: this token may make {limit} requests a minute; retry in {reset} s.",
            code="rate-limited",
            headers={"Retry-After": str(reset), **state.headers()},
            limit=limit,
        )


class RateLimitHeaders:
    """Adds the token's ``RateLimit-*`` headers to whatever answer the API gave (a result, a
    problem, a page of a list): ninja builds responses in several places, this sees them all."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state = getattr(request, "harness_rate", None)
        if isinstance(state, RateState):
            for name, value in state.headers().items():
                response.headers.setdefault(name, value)
        return response
