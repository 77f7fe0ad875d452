"""Typed readers for environment variables that fail loudly on a bad value.

Every knob of the project is read through these so that a typo in a deployment ("ture", "8OOO")
stops the process at start-up with a message naming the variable, instead of silently running
with a default.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A configuration value from the environment is invalid."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false/1/0/yes/no), got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if min_value is not None and number < min_value:
        raise ConfigError(f"{name} must be >= {min_value}, got {number}")
    if max_value is not None and number > max_value:
        raise ConfigError(f"{name} must be <= {max_value}, got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    min_value: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if min_value is not None and number < min_value:
        raise ConfigError(f"{name} must be >= {min_value}, got {number}")
    return number


def env_list(
    name: str, default: list[str], environ: Mapping[str, str] | None = None, sep: str = ","
) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(sep) if item.strip()]


def env_url(
    name: str, default: str, schemes: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str:
    value = env_str(name, default, environ)
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        # The value itself may hold a password: name the variable, never echo the URL.
        raise ConfigError(f"{name} must start with one of {allowed}")
    return value


def env_paths(
    name: str, default: list[Path], environ: Mapping[str, str] | None = None
) -> list[Path]:
    """A list of directories separated by os.pathsep; each must exist."""
    value = _raw(name, environ)
    if value is None or value == "":
        return list(default)
    paths = []
    for part in value.split(os.pathsep):
        if not part.strip():
            continue
        path = Path(part.strip()).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{name}: {part.strip()!r} is not an existing directory")
        paths.append(path.resolve())
    return paths


# -- readings shared by settings and the processes that start before Django (make run's
# supervisor, the private Redis): one reading per setting, so their defaults cannot drift.


def is_testing(environ: Mapping[str, str] | None = None) -> bool:
    return "pytest" in sys.modules or env_bool("HARNESS_TESTING", False, environ)


def data_dir(base_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """HARNESS_DATA_DIR, default <repo>/var: the database, secret key, snapshots and logs."""
    return Path(env_str("HARNESS_DATA_DIR", str(base_dir / "var"), environ)).expanduser().resolve()


def web_port(environ: Mapping[str, str] | None = None) -> int:
    return env_int("HARNESS_PORT", 8000, min_value=1, max_value=65535, environ=environ)


WORKER_POOLS = ("threads", "prefork")


def worker_pool(environ: Mapping[str, str] | None = None) -> str:
    """Celery's pool. ``threads`` (default): an agent waiting on its model holds a thread, not
    a process, so one worker keeps hundreds in flight. ``prefork``: one process per agent."""
    pool = env_str("CELERY_WORKER_POOL", "threads", environ)
    if pool not in WORKER_POOLS:
        raise ConfigError(
            f"CELERY_WORKER_POOL must be one of {', '.join(WORKER_POOLS)}, got {pool!r}"
        )
    return pool


def worker_concurrency(environ: Mapping[str, str] | None = None) -> int:
    """Agents one worker runs at once: threads are cheap (the default covers any run's cap),
    processes are not."""
    default = 256 if worker_pool(environ) == "threads" else 4
    return env_int(
        "CELERY_WORKER_CONCURRENCY", default, min_value=1, max_value=1024, environ=environ
    )


def private_redis_port(environ: Mapping[str, str] | None = None) -> int:
    """The private Redis's port (used when REDIS_URL is unset); tests default to another one
    so a test session never touches a `make run` stack's Redis."""
    default = 6391 if is_testing(environ) else 6389
    return env_int(
        "HARNESS_PRIVATE_REDIS_PORT", default, min_value=1, max_value=65535, environ=environ
    )


def load_or_create_secret(path: Path) -> str:
    """A local-use secret key kept in a 0600 file so sessions survive restarts."""

    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
