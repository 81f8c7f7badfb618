"""compose.yaml: valid against the Compose Specification's JSON schema (vendored in
tests/fixtures/compose-spec.json; origin in the README), `docker compose config` where Docker
exists, and the wiring that matters: a healthy database first, loopback-only ports, the URL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from sigma_grpc.config import DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, split_host_port
from tests.helpers import ROOT

COMPOSE = ROOT / "compose.yaml"
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
SERVICE = "sigma-grpc"


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    # Its "$schema" is https://json-schema.org/draft-07/schema, a spelling jsonschema does not look up.
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_yaml_is_valid_against_the_compose_specification() -> None:
    errors = sorted(validator().iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_mistake() -> None:
    broken = compose()
    broken["services"][SERVICE]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["postgres"]["healthcheck"]["intervall"] = "5s"
    errors = list(validator().iter_errors(broken))
    assert len(errors) == 2


def test_the_service_waits_for_a_healthy_postgres_16() -> None:
    services = compose()["services"]
    postgres = services["postgres"]
    assert postgres["image"].split(":")[1].startswith("16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(volume.split(":")[0] in compose()["volumes"] for volume in postgres["volumes"])
    assert services[SERVICE]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_the_service_is_built_here_and_wired_by_its_database_url() -> None:
    service = compose()["services"][SERVICE]
    assert service["build"] == "."
    url = service["environment"]["SIGMA_DATABASE_URL"]
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    # Credentials, not SIGMA_AUTH=none: the tokens file is a secret.
    assert "SIGMA_AUTH" not in service["environment"]
    assert service["environment"]["SIGMA_AUTH_TOKENS_FILE"] == "/run/secrets/sigma_tokens"
    assert service["secrets"] == ["sigma_tokens"]


def test_every_port_is_published_on_loopback_only() -> None:
    services = compose()["services"]
    published = {name: [str(port) for port in service.get("ports", [])] for name, service in services.items()}
    assert all(port.startswith("127.0.0.1:") for ports in published.values() for port in ports), published
    container_ports = {int(port.rsplit(":", 1)[1]) for port in published[SERVICE]}
    assert container_ports == {split_host_port(DEFAULT_GRPC_ADDR)[1], split_host_port(DEFAULT_HTTP_ADDR)[1]}


def test_prometheus_scrapes_the_services_metrics() -> None:
    prometheus = compose()["services"]["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    http_port = split_host_port(DEFAULT_HTTP_ADDR)[1]
    assert job["static_configs"] == [{"targets": [f"{SERVICE}:{http_port}"]}]


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], check=False, capture_output=True, timeout=30)
    return [docker, "compose"] if probe.returncode == 0 else None


def test_docker_compose_config_accepts_it(tmp_path: Any) -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip("docker compose is not installed here (the schema check above still ran)")
    tokens = tmp_path / "tokens"
    tokens.write_text("ops admin sha256:" + "0" * 64 + "\n")
    done = subprocess.run(
        [*command, "--file", str(COMPOSE), "config", "--quiet"],
        check=False,
        cwd=ROOT,
        env={**os.environ, "SIGMA_TOKENS_FILE": str(tokens)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
