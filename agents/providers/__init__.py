"""Model providers behind one small interface (``agents.contract.Provider``).

- ``catalog``: look a provider up by name (``get_provider``), the choices the launch form
  offers, each provider's default model and concurrency cap.
- ``registry``: configured providers (env and ``HARNESS_PROVIDERS_FILE``), keys by env-var name,
  rate limits, price overrides.
- ``heuristic``: the offline analyzer, built in, no network and no LLM.
- ``openai_provider`` / ``anthropic_provider``: the two SDK kinds, on the shared agent loop
  (``loop``) and prompts (``prompt``).

This package file imports nothing, so any module may import a submodule without pulling in
every provider (pricing reads the registry; the loop reads pricing).
"""
