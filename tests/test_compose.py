"""compose.yaml cannot run here (no Docker engine), so its contract is checked by reading it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
APP_SERVICES = ("migrate", "web", "worker")
INFRA_SERVICES = ("redis", "postgres", "jaeger")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else command.split()


def test_stack_has_web_worker_redis_postgres_and_a_trace_backend(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {"web", "worker", "redis", "postgres", "jaeger"} <= set(services)


def test_web_and_worker_share_one_definition_through_an_anchor() -> None:
    text = COMPOSE.read_text()
    assert re.search(r"^x-app: &app\s*$", text, re.MULTILINE)
    for name in APP_SERVICES:
        block = re.search(rf"^  {name}:\n((?:    .*\n|\n)+)", text, re.MULTILINE)
        assert block, name
        assert "<<: *app\n" in block.group(1), f"{name} does not merge the x-app anchor"


def test_app_services_run_the_same_image(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    builds = {services[name]["build"] for name in APP_SERVICES}
    assert images == {"agent-harness:latest"}
    assert builds == {"."}


def test_web_runs_daphne_without_websocket_timeout(services: dict[str, dict[str, Any]]) -> None:
    command = _command(services["web"])
    assert command[0] == "daphne"
    index = command.index("--websocket_timeout")
    assert command[index + 1] == "-1"
    assert command[-1] == "harness_site.asgi:application"
    assert command[command.index("-b") + 1] == "0.0.0.0"


def test_worker_runs_celery_for_this_project(services: dict[str, dict[str, Any]]) -> None:
    command = _command(services["worker"])
    assert command[:4] == ["celery", "-A", "harness_site", "worker"]
    assert "--concurrency" in command


def test_workers_scale_out_with_compose_scale(services: dict[str, dict[str, Any]]) -> None:
    """``docker compose up --scale worker=N``: N copies of the worker share only PostgreSQL
    and Redis, so nothing in the service may be unique to one copy."""
    worker = services["worker"]
    assert "container_name" not in worker  # compose refuses to scale a named container
    assert "ports" not in worker  # copies would fight over a published port
    command = _command(worker)
    # Each copy's Celery node name must differ: %h is the container's own hostname.
    assert "%h" in command[command.index("-n") + 1]
    env = worker["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
    # The snapshots the agents read live in the shared data volume, not in the container.
    assert "harness-data:/data" in worker["volumes"] and env["HARNESS_DATA_DIR"] == "/data"


def test_migrations_run_once_before_web_and_worker(services: dict[str, dict[str, Any]]) -> None:
    script = " ".join(_command(services["migrate"]))
    for step in ("migrate --noinput", "setup_roles", "ensure_admin"):
        assert f"manage.py {step}" in script
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_app_environment_is_wired_to_the_stack(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DEBUG"] == "false"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "SECRET_KEY must come from env"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["HARNESS_DATA_DIR"] == "/data"
    # Each process is its own service in the traces.
    names = {services[name]["environment"]["OTEL_SERVICE_NAME"] for name in APP_SERVICES}
    assert len(names) == len(APP_SERVICES)


def test_database_credentials_match_between_app_and_postgres(
    services: dict[str, dict[str, Any]],
) -> None:
    pg = services["postgres"]["environment"]
    url = services["web"]["environment"]["DATABASE_URL"]
    assert url == (
        f"postgres://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("web", "worker", *INFRA_SERVICES):
        check = services[name].get("healthcheck")
        assert check and check["test"], f"{name} has no healthcheck"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])


def test_app_waits_for_healthy_infrastructure(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        for infra in INFRA_SERVICES:
            assert depends[infra] == {"condition": "service_healthy"}, (name, infra)


def test_jaeger_receives_otlp_and_exposes_its_ui(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert any(str(port).endswith("16686:16686") for port in jaeger["ports"])


def test_published_ports_are_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all hosts"


def test_dockerfile_installs_the_lock_and_collects_static() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.12-slim", dockerfile, re.MULTILINE)
    assert "pip install -r requirements.lock" in dockerfile
    assert "manage.py collectstatic --noinput" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.MULTILINE), "must not run as root"
