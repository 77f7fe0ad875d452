"""Providers by name. ``heuristic`` is built in; every other name is configured in
``agents.providers.registry`` and built here as its kind (OpenAI-compatible or Anthropic).
An unknown name is a permanent ``ProviderError`` listing the known ones."""

from __future__ import annotations

import functools
from typing import Any

from agents.contract import Provider, ProviderError
from agents.providers.anthropic_provider import AnthropicProvider
from agents.providers.heuristic import HeuristicProvider
from agents.providers.openai_provider import OpenAIProvider
from agents.providers.registry import MissingApiKey, provider_config, provider_names


@functools.cache
def get_provider(name: str) -> Any:
    """The provider named ``name``, built once per process (configuration is read at start)."""
    return build_provider(name)


def build_provider(name: str) -> Provider:
    """A fresh provider instance for ``name``."""
    if name == "heuristic":
        return HeuristicProvider()
    try:
        config = provider_config(name)
    except KeyError as exc:
        raise ProviderError(str(exc.args[0]), permanent=True) from None
    # The client is made per call, with the key read then.
    if config.kind == "anthropic":
        return AnthropicProvider(config)
    return OpenAIProvider(config)


def provider_choices() -> list[tuple[str, str]]:
    choices = [("heuristic", HeuristicProvider.label)]
    return choices + [(name, name) for name in provider_names() if name != "heuristic"]


def missing_key_variable(name: str) -> str | None:
    """The environment variable ``name`` still needs (its API key is unset), else None. Unknown
    names are None too: the launch refuses those with their own message."""
    try:
        config = getattr(get_provider(name), "config", None)
    except (ProviderError, ValueError, KeyError):
        return None
    if config is None:
        return None
    try:
        config.api_key()
    except MissingApiKey:
        return str(config.api_key_env or "an API key variable")
    return None


def default_model(name: str) -> str:
    provider = get_provider(name)
    getter = getattr(provider, "default_model", None)
    return str(getter()) if callable(getter) else ""


def concurrency_cap(name: str) -> int | None:
    """Global (all runs, all workers) concurrent-call cap for a provider, None = unlimited."""
    cap = getattr(get_provider(name), "concurrency", None)
    return int(cap) if cap else None


__all__ = [
    "Provider",
    "ProviderError",
    "get_provider",
    "missing_key_variable",
    "provider_choices",
]
