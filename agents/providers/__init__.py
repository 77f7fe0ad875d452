"""Provider registry entry point. ``heuristic`` is built in; every other name is resolved by
``agents.providers.registry`` from configuration (OpenAI-compatible and Anthropic kinds)."""

from __future__ import annotations

import functools
from typing import Any

from agents.contract import Provider, ProviderError
from agents.providers.heuristic import HeuristicProvider


@functools.cache
def get_provider(name: str) -> Any:
    if name == "heuristic":
        return HeuristicProvider()
    try:
        from agents.providers.registry import build_provider
    except ImportError:  # pragma: no cover - registry ships with the project
        raise ProviderError(f"unknown provider {name!r}", permanent=True) from None
    return build_provider(name)


def provider_choices() -> list[tuple[str, str]]:
    choices = [("heuristic", HeuristicProvider.label)]
    try:
        from agents.providers.registry import provider_names
    except ImportError:
        return choices
    return choices + [(name, name) for name in provider_names() if name != "heuristic"]


def default_model(name: str) -> str:
    provider = get_provider(name)
    getter = getattr(provider, "default_model", None)
    return str(getter()) if callable(getter) else ""


def concurrency_cap(name: str) -> int | None:
    """Global (all runs, all workers) concurrent-call cap for a provider, None = unlimited."""
    cap = getattr(get_provider(name), "concurrency", None)
    return int(cap) if cap else None


__all__ = ["Provider", "ProviderError", "get_provider", "provider_choices"]
