"""The provider registry: which model providers exist, how to reach them, and their limits.

Two providers are built in and read the environment the way their own SDKs do:

* ``openai`` (kind ``openai``): ``OPENAI_BASE_URL`` (unset = api.openai.com), ``OPENAI_API_KEY``,
  default model ``OPENAI_MODEL`` (else ``gpt-4o-mini``). Any OpenAI-compatible server (Azure
  OpenAI's v1 endpoint, vLLM, Ollama, llama.cpp) works by setting the base URL.
* ``anthropic`` (kind ``anthropic``): ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY``, default model
  ``ANTHROPIC_MODEL`` (else ``claude-haiku-4-5``).

More providers (and overrides of the built-ins' limits and prices) come from the JSON or YAML
file named by ``settings.HARNESS_PROVIDERS_FILE``::

    providers:
      vllm:
        kind: openai
        base_url: http://127.0.0.1:8001/v1
        api_key_env: VLLM_API_KEY      # the NAME of the variable, never the key
        api_key_required: false
        default_model: Qwen/Qwen2.5-7B-Instruct
        rpm: 600
        tpm: 2000000
        concurrency: 8
        prices: {"*": {input: 0, output: 0}}   # self-hosted: free, not "unpriced"

Contracts:

* A config holds the *name* of the key's environment variable; the key itself is read only by
  ``api_key()`` at call time and is never stored, logged or put in a message.
* A bad file fails loudly with ``ImproperlyConfigured`` naming the file and the bad field
  (``providers.vllm.base_url: …``).
* The file is re-read when its path or modification time changes, so a long-lived worker picks
  up edits and tests can point at a fresh file.
"""

from __future__ import annotations

import functools
import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    pass

ProviderKind = Literal["openai", "anthropic"]
RESERVED_NAMES = frozenset({"heuristic"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


class PriceOverride(BaseModel):
    """USD per million tokens; 0 for self-hosted models (free, and still counted as priced)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)


# Where each SDK goes when no base URL is set.
SDK_DEFAULT_URLS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
}


class ProviderConfig(BaseModel):
    """One named provider. ``base_url_env`` (built-ins) is read at call time, after ``base_url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: ProviderKind
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    # Local servers (Ollama, llama.cpp) need no key: the SDKs still want a non-empty string.
    api_key_required: bool = True
    models: list[str] = Field(default_factory=list)  # empty = any model the server accepts
    default_model: str = Field(min_length=1, max_length=200)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)  # model or "*" → price
    # OpenAI's reasoning models refuse ``max_tokens``; vLLM, Ollama and llama.cpp all take it.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Non-secret extra headers (e.g. an Azure API version or a gateway route).
    headers: dict[str, str] = Field(default_factory=dict)
    # The /v1/embeddings model semantic dedup uses; unset = dedup uses offline TF-IDF.
    embedding_model: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (max 40)")
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved for the built-in offline provider")
        return value

    @field_validator("api_key_env", "base_url_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        # A value that is not a variable name is most likely a pasted key: refuse, never echo it.
        if value is not None and not _ENV_RE.match(value):
            raise ValueError("must be the NAME of an environment variable (e.g. VLLM_API_KEY)")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def server_url(self) -> str:
        """Where this provider's calls go: the resolved base URL, else the SDK's own default
        (what a trace's ``server.address`` names)."""
        return self.resolved_base_url() or SDK_DEFAULT_URLS[self.kind]

    def resolved_base_url(self) -> str | None:
        """The base URL for the SDK, read now: the config's, else its env var, else the SDK's."""
        if self.base_url:
            return self.base_url
        if self.base_url_env:
            return os.environ.get(self.base_url_env) or None
        return None

    def api_key(self) -> str:
        """The key, read from the environment at call time. Raises ``MissingApiKey`` (its message
        names the variable, never a value) when a required key is unset."""
        value = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if value:
            return value
        if self.api_key_required:
            raise MissingApiKey(
                f"provider {self.name!r} needs an API key: set the environment variable "
                f"{self.api_key_env or '(api_key_env is not configured)'}"
            )
        return "no-key"

    def timeout(self) -> float:
        return self.timeout_s or float(settings.HARNESS_CALL_TIMEOUT_S)

    def check_model(self, model: str) -> None:
        if self.models and model not in self.models:
            raise UnknownModel(
                f"model {model!r} is not configured for provider {self.name!r} "
                f"(configured: {', '.join(self.models)})"
            )


class MissingApiKey(ImproperlyConfigured):
    pass


class UnknownModel(ValueError):
    pass


class _ProvidersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: dict[str, dict[str, Any]]


def _builtin(kind: ProviderKind, default_model: str, **more: Any) -> ProviderConfig:
    """A built-in named after its kind, reading ``{KIND}_BASE_URL``, ``{KIND}_API_KEY`` and
    ``{KIND}_MODEL`` as its SDK does."""
    prefix = kind.upper()
    return ProviderConfig(
        name=kind,
        kind=kind,
        base_url_env=f"{prefix}_BASE_URL",
        api_key_env=f"{prefix}_API_KEY",
        default_model=os.environ.get(f"{prefix}_MODEL") or default_model,
        **more,
    )


def builtin_configs() -> dict[str, ProviderConfig]:
    """The two built-ins, as their SDKs read the environment."""
    openai_url = os.environ.get("OPENAI_BASE_URL", "")
    return {
        "openai": _builtin(
            "openai",
            "gpt-4o-mini",
            embedding_model=os.environ.get("OPENAI_EMBEDDING_MODEL") or None,
            # api.openai.com's reasoning models refuse max_tokens; compatible servers take it.
            max_tokens_param="max_tokens"
            if openai_url and "api.openai.com" not in openai_url
            else "max_completion_tokens",
        ),
        "anthropic": _builtin("anthropic", "claude-haiku-4-5"),
    }


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImproperlyConfigured(
            f"HARNESS_PROVIDERS_FILE {path}: cannot read it ({exc.strerror})"
        ) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError or yaml.YAMLError (not a ValueError)
        raise ImproperlyConfigured(f"HARNESS_PROVIDERS_FILE {path}: not valid: {exc}") from None
    return data if isinstance(data, dict) else {"providers": data}


def _validation_message(path: Path, prefix: tuple[str, ...], exc: ValidationError) -> str:
    problems = [
        f"{_field_path(prefix + tuple(error['loc']))}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    ]
    return f"HARNESS_PROVIDERS_FILE {path}: " + "; ".join(problems)


def parse_providers_file(path: Path) -> dict[str, ProviderConfig]:
    """Validate ``path`` and return the providers it defines, merged over the built-ins.

    An entry named like a built-in overrides only the fields it sets (e.g. ``rpm`` or ``prices``).
    """
    data = _read_file(path)
    try:
        parsed = _ProvidersFile.model_validate(data)
    except ValidationError as exc:
        raise ImproperlyConfigured(_validation_message(path, (), exc)) from None
    configs = builtin_configs()
    for name, entry in parsed.providers.items():
        base = configs[name].model_dump(exclude_defaults=True) if name in configs else {}
        if not isinstance(entry, dict):
            raise ImproperlyConfigured(
                f"HARNESS_PROVIDERS_FILE {path}: providers.{name}: must be a mapping"
            )
        merged = {**base, **entry, "name": name}
        try:
            configs[name] = ProviderConfig.model_validate(merged)
        except ValidationError as exc:
            raise ImproperlyConfigured(
                _validation_message(path, ("providers", name), exc)
            ) from None
    return configs


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, environ_key: tuple[str, ...]) -> dict[str, ProviderConfig]:
    return parse_providers_file(Path(path)) if path else builtin_configs()


def _configs() -> dict[str, ProviderConfig]:
    path = str(getattr(settings, "HARNESS_PROVIDERS_FILE", "") or "")
    mtime = 0
    if path:
        try:
            mtime = Path(path).stat().st_mtime_ns
        except OSError:
            mtime = -1  # _read_file reports the problem
    # The built-ins' defaults depend on these variables: a change must not be hidden by the cache.
    environ_key = tuple(
        os.environ.get(name, "") for name in ("OPENAI_BASE_URL", "OPENAI_MODEL", "ANTHROPIC_MODEL")
    )
    return _load(path, mtime, environ_key)


def provider_names() -> list[str]:
    """Every configured model provider (``heuristic`` is added by ``agents.providers``)."""
    return sorted(_configs())


def provider_config(name: str) -> ProviderConfig:
    """The config of ``name``; ``KeyError`` with the known names when it does not exist."""
    configs = _configs()
    if name not in configs:
        raise KeyError(f"unknown provider {name!r} (known: {', '.join(sorted(configs))})")
    return configs[name]


def price_overrides() -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(provider name, model or "*") → USD per million input/output tokens, from the config."""
    return {
        (config.name, model): (price.input, price.output)
        for config in _configs().values()
        for model, price in config.prices.items()
    }
