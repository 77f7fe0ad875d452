"""How much one model call reserves from its run's budget, and how much it may then output.

While the budget has room, a call reserves its upper bound (its input estimate and its whole
output cap, ``max_tokens``) and its output is never cut. Near the end of a budget that bound
refuses calls that would in fact fit (most calls output a small part of their cap): reserving
it, a run with a budget worth 14 agents was declared exhausted with a quarter to two thirds of
it unspent. So a call also names its *likely* size: its input and the output the run's settled
calls averaged, with a margin (``LIKELY_OUTPUT_MARGIN``); before any call has settled, its whole
cap. The budget grants the upper bound when it fits, else what is left as long as that covers
the likely size (``Budget.reserve_call``), and the call's output is capped to what the grant
pays for (``CallSize.output_cap``). A call therefore never costs more than it reserved, so the
budget is never overspent, and only a call that would have output more than what was left is
cut (the offline analyzer says which findings it dropped; a model stops at its ``max_tokens``).
A run is exhausted when even a call's likely size cannot fit with nothing in flight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from agents.budget import usd_to_micro

PriceFn = Callable[[int, int], Decimal]
"""(input tokens, output tokens) -> what such a call costs at most, in USD."""

LIKELY_OUTPUT_MARGIN = 1.5
"""A call is likely to output at most this much more than the run's calls did on average: the
offline analyzer's agents output from 26 to 1,246 tokens (average 215) on the sample target, so
a tighter margin would cut more calls at the end of a budget, a wider one leave more unspent."""


def likely_output_tokens(max_output: int, calls: int, output_tokens: int) -> int:
    """The output a call will likely produce: the settled calls' average with the margin,
    within ``[1, max_output]``; ``max_output`` when no call has settled yet."""
    if max_output <= 0:
        return 0
    if calls <= 0:
        return max_output
    likely = math.ceil(output_tokens * LIKELY_OUTPUT_MARGIN / calls)
    return max(1, min(max_output, likely))


def _micro(price: PriceFn, input_tokens: int, output_tokens: int) -> int:
    return usd_to_micro(float(price(input_tokens, output_tokens)))


@dataclass(frozen=True, slots=True)
class CallSize:
    """One call's upper bound and likely size, in micro-USD and tokens."""

    input_tokens: int
    max_output: int
    likely_output: int
    micro_usd: int
    min_micro_usd: int
    price: PriceFn = field(repr=False, compare=False)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.max_output

    @property
    def min_tokens(self) -> int:
        return self.input_tokens + self.likely_output

    def output_cap(self, micro_usd: int, tokens: int) -> int:
        """The most output tokens the call may produce without costing more than a grant of
        ``micro_usd`` and ``tokens``: ``max_output`` for a grant of the whole upper bound, at
        least ``likely_output`` for one that covers the likely size, 0 if even no output fits."""
        if micro_usd >= self.micro_usd and tokens >= self.tokens:
            return self.max_output

        def fits(out: int) -> bool:
            return (
                self.input_tokens + out <= tokens
                and _micro(self.price, self.input_tokens, out) <= micro_usd
            )

        if not fits(0):
            return 0
        low, high = 0, self.max_output  # fits(low) holds; the cap is the largest such value
        while low < high:
            middle = (low + high + 1) // 2
            if fits(middle):
                low = middle
            else:
                high = middle - 1
        return low


def size_call(
    price: PriceFn, input_tokens: int, max_output: int, calls: int, output_tokens: int
) -> CallSize:
    """Size a call of ``input_tokens`` (an estimate that is an upper bound) and at most
    ``max_output`` output tokens, in a run whose ``calls`` settled calls output
    ``output_tokens`` in all."""
    if input_tokens < 0 or max_output < 0:
        raise ValueError("token counts must be >= 0")
    likely = likely_output_tokens(max_output, calls, output_tokens)
    return CallSize(
        input_tokens=input_tokens,
        max_output=max_output,
        likely_output=likely,
        micro_usd=_micro(price, input_tokens, max_output),
        min_micro_usd=_micro(price, input_tokens, likely),
        price=price,
    )
