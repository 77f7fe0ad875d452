"""Environment readers fail loudly on bad values; production settings refuse to start unsafe."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness_site.env import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_paths,
    env_url,
    load_or_create_secret,
)

ROOT = Path(__file__).resolve().parent.parent


# --- env_bool ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "On"])
def test_env_bool_accepts_true_spellings(raw: str) -> None:
    assert env_bool("FLAG", False, environ={"FLAG": raw}) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_env_bool_accepts_false_spellings(raw: str) -> None:
    assert env_bool("FLAG", True, environ={"FLAG": raw}) is False


def test_env_bool_missing_gives_default() -> None:
    assert env_bool("FLAG", True, environ={}) is True
    assert env_bool("FLAG", False, environ={}) is False


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y e s"])
def test_env_bool_rejects_typo_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="MY_FLAG"):
        env_bool("MY_FLAG", False, environ={"MY_FLAG": raw})


# --- env_int / env_float ----------------------------------------------------------------------


def test_env_int_parses_and_defaults() -> None:
    assert env_int("PORT", 8000, environ={"PORT": " 9000 "}) == 9000
    assert env_int("PORT", 8000, environ={}) == 8000
    assert env_int("PORT", 8000, environ={"PORT": ""}) == 8000


@pytest.mark.parametrize("raw", ["8OOO", "1.5", "abc", "0x10"])
def test_env_int_rejects_non_integer_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="HARNESS_PORT") as info:
        env_int("HARNESS_PORT", 8000, environ={"HARNESS_PORT": raw})
    assert "integer" in str(info.value)


def test_env_int_enforces_bounds() -> None:
    with pytest.raises(ConfigError, match=r"WORKERS must be >= 1"):
        env_int("WORKERS", 4, min_value=1, environ={"WORKERS": "0"})
    with pytest.raises(ConfigError, match=r"WORKERS must be <= 64"):
        env_int("WORKERS", 4, max_value=64, environ={"WORKERS": "65"})
    assert env_int("WORKERS", 4, min_value=1, max_value=64, environ={"WORKERS": "64"}) == 64
    assert env_int("WORKERS", 4, min_value=1, max_value=64, environ={"WORKERS": "1"}) == 1


def test_env_float_parses_and_defaults() -> None:
    assert env_float("BUDGET", 5.0, environ={"BUDGET": "2.5"}) == 2.5
    assert env_float("BUDGET", 5.0, environ={}) == 5.0


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "five", "1,5"])
def test_env_float_rejects_non_finite_or_garbage_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="HARNESS_DEFAULT_BUDGET_USD"):
        env_float("HARNESS_DEFAULT_BUDGET_USD", 5.0, environ={"HARNESS_DEFAULT_BUDGET_USD": raw})


def test_env_float_enforces_minimum() -> None:
    with pytest.raises(ConfigError, match="TIMEOUT must be >= 1"):
        env_float("TIMEOUT", 60.0, min_value=1, environ={"TIMEOUT": "0.5"})


# --- env_list ---------------------------------------------------------------------------------


def test_env_list_splits_and_strips_and_drops_empty_items() -> None:
    raw = " example.com, ,api.example.com ,"
    assert env_list("HOSTS", ["x"], environ={"HOSTS": raw}) == ["example.com", "api.example.com"]


def test_env_list_default_is_a_copy() -> None:
    default = ["a"]
    result = env_list("HOSTS", default, environ={})
    assert result == ["a"]
    result.append("b")
    assert default == ["a"]


def test_env_list_set_but_empty_means_empty_list() -> None:
    assert env_list("HOSTS", ["a"], environ={"HOSTS": ""}) == []


# --- env_url ----------------------------------------------------------------------------------


def test_env_url_accepts_allowed_scheme() -> None:
    url = "postgres://u:p@db:5432/harness"
    assert env_url("DATABASE_URL", "", ("postgres", "sqlite"), environ={"DATABASE_URL": url}) == url


def test_env_url_default_used_when_unset() -> None:
    assert env_url("REDIS_URL", "redis://x/0", ("redis",), environ={}) == "redis://x/0"


@pytest.mark.parametrize(
    "raw", ["mysql://admin:hunter2secret@db/x", "hunter2secret@localhost", "http://hunter2secret"]
)
def test_env_url_rejects_wrong_scheme_without_echoing_the_url(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_url("DATABASE_URL", "", ("postgres", "sqlite"), environ={"DATABASE_URL": raw})
    message = str(info.value)
    assert "DATABASE_URL" in message
    assert "postgres://" in message
    assert "hunter2secret" not in message
    assert raw not in message


# --- env_paths --------------------------------------------------------------------------------


def test_env_paths_accepts_existing_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    raw = f"{a}{os.pathsep}{os.pathsep}{b}"
    assert env_paths("ROOTS", [], environ={"ROOTS": raw}) == [a.resolve(), b.resolve()]


def test_env_paths_unset_gives_default(tmp_path: Path) -> None:
    assert env_paths("ROOTS", [tmp_path], environ={}) == [tmp_path]


def test_env_paths_rejects_missing_directory_naming_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="HARNESS_TARGET_ROOTS"):
        env_paths("HARNESS_TARGET_ROOTS", [], environ={"HARNESS_TARGET_ROOTS": str(missing)})


def test_env_paths_rejects_a_file(tmp_path: Path) -> None:
    file = tmp_path / "f.txt"
    file.write_text("x")
    with pytest.raises(ConfigError, match="HARNESS_TARGET_ROOTS"):
        env_paths("HARNESS_TARGET_ROOTS", [], environ={"HARNESS_TARGET_ROOTS": str(file)})


# --- load_or_create_secret --------------------------------------------------------------------


def test_load_or_create_secret_creates_private_file_and_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret_key"
    first = load_or_create_secret(path)
    assert len(first) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_load_or_create_secret_differs_between_installs(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


# --- settings in a fresh process ----------------------------------------------------------------


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "SECRET_KEY",
            "DEBUG",
            "ALLOWED_HOSTS",
            "HARNESS_TESTING",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
        and not k.startswith("PYTEST")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "harness_site.settings",
            "HARNESS_DATA_DIR": str(tmp_path),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def test_settings_without_secret_key_in_production_refuse_to_import(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, DEBUG="false")
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert "ConfigError" in result.stderr
    # It must not have quietly made a key file for itself.
    assert not (tmp_path / "secret_key").exists()


def test_settings_with_typo_in_debug_refuse_to_import(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, DEBUG="ture", SECRET_KEY="x" * 60)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_deploy_check_passes_without_warnings_in_production_config(tmp_path: Path) -> None:
    env = _clean_env(
        tmp_path,
        DEBUG="false",
        SECRET_KEY="k3y-" + "aZ9!xQ7@pL2#vB5$" * 4,
        ALLOWED_HOSTS="example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


# --- security headers -------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_page_sends_content_security_policy(client: object) -> None:
    response = client.get("/accounts/login/")  # type: ignore[attr-defined]
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self' 'nonce-" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-eval" not in policy
