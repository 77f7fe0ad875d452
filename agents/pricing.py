"""Prices of model calls: genai-prices' bundled table for known models, overrides from config.

A model with no known price is *unpriced*: its cost is recorded as None and every total that
includes it says so, never a silent $0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal

import genai_prices

from agents.contract import Usage
from agents.providers.registry import price_overrides

PRICE_DATA_VERSION = f"genai-prices {getattr(genai_prices, '__version__', 'unknown')}"

# The offline analyzer has no real cost. It bills a nominal price per token so budgets, cost
# charts and forecasts are exercised end to end; it is labelled "nominal" wherever it shows.
HEURISTIC_PRICE = (Decimal("0.50"), Decimal("1.50"))  # USD per million input/output tokens


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal | None  # None = unpriced
    version: str

    @property
    def unpriced(self) -> bool:
        return self.cost_usd is None


def per_million(usage: Usage, input_per_m: Decimal, output_per_m: Decimal) -> Decimal:
    return (
        Decimal(usage.input_tokens) * input_per_m + Decimal(usage.output_tokens) * output_per_m
    ) / Decimal(1_000_000)


@functools.cache
def _overrides() -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(provider, model) → per-million prices, from the provider registry's configuration."""
    return price_overrides()


def price_call(provider_kind: str, provider_name: str, model: str, usage: Usage) -> Price:
    if provider_kind == "heuristic":
        return Price(per_million(usage, *HEURISTIC_PRICE), "heuristic-nominal")
    override = _overrides().get((provider_name, model)) or _overrides().get((provider_name, "*"))
    if override is not None:
        return Price(per_million(usage, *override), "config-override")
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price

    try:
        result = calc_price(
            GPUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            model_ref=model,
            provider_id=provider_kind,
        )
    except LookupError:
        return Price(None, PRICE_DATA_VERSION)
    return Price(Decimal(str(result.total_price)), PRICE_DATA_VERSION)


def estimate_cost_upper_bound(
    provider_kind: str, provider_name: str, model: str, usage: Usage
) -> Decimal:
    """Used only to reserve budget. An unpriced model reserves $0 (its tokens still count
    against the token budget), which is why unpriced calls are flagged in every total."""
    price = price_call(provider_kind, provider_name, model, usage)
    return price.cost_usd if price.cost_usd is not None else Decimal(0)
