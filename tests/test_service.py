"""The running service: health, reflection, graceful stop, and `sigma-grpc serve` as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import asyncpg
import grpc
import grpc_testing
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.healthcheck import probe
from sigma_grpc.storage.pool import create_pool
from tests.helpers import Stub, http_port_of, start_serve_process
from tests.helpers import signal as signal_request

ROOT = Path(__file__).resolve().parent.parent


async def test_health_serves_the_server_and_each_service(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "sigma.v1.DecisionService"):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services_and_describes_the_contract(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="sigma.v1.DecisionService"),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert names == {
        "sigma.v1.DecisionService",
        "sigma.v1.ExecutionService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    files = responses[1].file_descriptor_response.file_descriptor_proto
    assert any(b"sigma/v1/decision_service.proto" in f for f in files)


async def test_a_request_over_4_mib_is_refused_before_any_handler(stub: Stub, clean_db: asyncpg.Pool) -> None:
    huge = signal_request(request_id="x" * (4 * 1024 * 1024 + 1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.LogDecision(huge, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 0


async def test_stop_lets_in_flight_calls_finish(database_url: str, clean_db: asyncpg.Pool) -> None:
    """A call blocked on the database when the stop begins still completes successfully."""
    pool = await create_pool(database_url, max_size=2)
    running = await start_server(pool, "127.0.0.1:0")
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
            clean_db.acquire() as blocker,
        ):
            stub = pb_grpc.DecisionServiceStub(channel)
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE decision_logs IN ACCESS EXCLUSIVE MODE")
            in_flight = asyncio.ensure_future(stub.LogDecision(signal_request(request_id="in-flight")))
            await _until(partial(_waiting_on_lock, clean_db))
            stopping = asyncio.ensure_future(running.stop(grace=10))
            await asyncio.sleep(0.2)
            assert not in_flight.done()
            await tx.rollback()
            response = await in_flight
            await stopping
        assert response.decision.request_id == "in-flight"
        assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 1
    finally:
        await running.stop(grace=0)
        await pool.close()


async def _waiting_on_lock(pool: asyncpg.Pool) -> bool:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'decision_logs'::regclass"
    )
    return count > 0


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _start_serve(data_dir: Path) -> tuple[subprocess.Popen[str], int, list[str]]:
    """`python -m sigma_grpc serve` on the embedded database and a free port; its port and log."""
    return start_serve_process({"SIGMA_DATA_DIR": str(data_dir), "SIGMA_DATABASE_URL": ""})


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_serve_on_embedded_database_then_stop(tmp_path: Path, stop_signal: signal.Signals) -> None:
    """The README's run command: embedded PostgreSQL, migrations, gRPC; a signal stops all of it."""
    process, port, lines = _start_serve(tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = Stub(channel)
            request = signal_request(symbol="kPEPE", direction=pb.DIRECTION_SHORT)
            decision = (await client.LogDecision(request, timeout=10)).decision
            fetched = await client.GetDecision(pb.GetDecisionRequest(id=decision.id), timeout=10)
            assert fetched.decision.symbol == "kPEPE"
        # The same process serves the HTTP/JSON gateway and the dashboard.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port_of(lines)}") as http:
            over_http = await http.get(f"/v1/decisions/{decision.id}")
            assert over_http.json()["decision"]["symbol"] == "kPEPE"
        healthy = subprocess.run(
            [sys.executable, "-m", "sigma_grpc", "healthcheck"],
            env={**os.environ, "SIGMA_GRPC_ADDR": f"127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (healthy.returncode, healthy.stdout.strip()) == (0, "SERVING")
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    log = "".join(lines)
    assert "applied migration 060_decision_logs" in log
    assert "stopped" in log
    # The embedded PostgreSQL was stopped too: its pid file is gone.
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_healthcheck_probe_reads_the_health_service() -> None:
    """grpc-testing plays the server for the synchronous probe (it runs real client code here)."""
    method = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    for status, expected in [
        (health_pb2.HealthCheckResponse.SERVING, (True, "SERVING")),
        (health_pb2.HealthCheckResponse.NOT_SERVING, (False, "NOT_SERVING")),
    ]:
        channel = grpc_testing.channel(
            health_pb2.DESCRIPTOR.services_by_name.values(), grpc_testing.strict_real_time()
        )
        result: list[tuple[bool, str]] = []
        caller = threading.Thread(
            target=lambda ch=channel, out=result: out.append(probe(ch, "sigma.v1.DecisionService"))
        )
        caller.start()
        _, request, rpc = channel.take_unary_unary(method)
        assert request.service == "sigma.v1.DecisionService"
        rpc.terminate(health_pb2.HealthCheckResponse(status=status), (), grpc.StatusCode.OK, "")
        caller.join(5)
        assert result == [expected]


def test_healthcheck_probe_reports_an_unreachable_server() -> None:
    channel = grpc_testing.channel(
        health_pb2.DESCRIPTOR.services_by_name.values(), grpc_testing.strict_real_time()
    )
    method = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    result: list[tuple[bool, str]] = []
    caller = threading.Thread(target=lambda: result.append(probe(channel)))
    caller.start()
    _, _, rpc = channel.take_unary_unary(method)
    rpc.terminate(None, (), grpc.StatusCode.UNAVAILABLE, "connection refused")
    caller.join(5)
    assert result == [(False, "health check failed: UNAVAILABLE")]


def _buf(*args: str) -> subprocess.CompletedProcess[str]:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.fail("the buf CLI is missing: run `make setup` (it installs package.json's tools)")
    return subprocess.run(
        [str(buf), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_buf_curl_lists_the_rpcs_and_calls_them(server: RunningServer, clean_db: asyncpg.Pool) -> None:
    """What a person debugging with `buf curl` sees, through server reflection alone."""
    base = f"http://127.0.0.1:{server.port}"
    listed = await asyncio.to_thread(_buf, "--list-methods", base)
    assert listed.returncode == 0, listed.stderr
    methods = set(listed.stdout.split())
    assert {
        f"sigma.v1.DecisionService/{name}"
        for name in ("LogDecision", "GetDecision", "ListDecisions", "GetStats", "RecordOutcome")
    } <= methods

    body = '{"symbol":"BTC","direction":"DIRECTION_LONG","decision_type":"DECISION_TYPE_SIGNAL",'
    body += '"trader_count":7,"agreement_pct":0.8,"effective_k":3.2,"price_at_decision":"0.00012345",'
    body += '"gates":[{"name":"supermajority","passed":true,"value":0.8,"threshold":0.7}]}'
    logged = await asyncio.to_thread(_buf, "-d", body, f"{base}/sigma.v1.DecisionService/LogDecision")
    assert logged.returncode == 0, logged.stderr
    assert '"priceAtDecision": "0.00012345"' in logged.stdout
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 1

    refused = await asyncio.to_thread(
        _buf, "-d", '{"symbol":"BTC"}', f"{base}/sigma.v1.DecisionService/LogDecision"
    )
    # buf curl exits with 8 x the gRPC code: INVALID_ARGUMENT (3) gives 24.
    assert refused.returncode == 24, refused.stderr
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 1


def test_serve_refuses_a_network_that_disagrees_with_the_url(tmp_path: Path) -> None:
    """Refused before anything starts: the SDK would sign testnet-style for any non-mainnet URL."""
    env = {
        **os.environ,
        "SIGMA_DATA_DIR": str(tmp_path),
        "SIGMA_HL_NETWORK": "mainnet",
        "SIGMA_HL_BASE_URL": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sigma_grpc", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SIGMA_HL_NETWORK=mainnet needs SIGMA_HL_BASE_URL unset or exactly" in result.stderr
    assert not (tmp_path / "pg").exists()


async def test_the_gateway_alone_forwards_to_a_remote_server(server: RunningServer) -> None:
    """`sigma-grpc gateway --target`: only HTTP/JSON and the dashboard, for a gRPC server elsewhere."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sigma_grpc", "gateway", "--target", f"127.0.0.1:{server.port}"],
        cwd=ROOT,
        env={**os.environ, "SIGMA_HTTP_ADDR": "127.0.0.1:0"},
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or ()), daemon=True)
    reader.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port_of(lines)}") as http:
            response = await http.get("/v1/stats")
        assert response.status_code == 200, response.text
        assert response.json()["days"] == 7
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "".join(lines)


async def test_serve_demo_fills_an_empty_log_once(tmp_path: Path) -> None:
    """`sigma-grpc serve --demo`: a week of signals, outcomes and paper executions for the dashboard."""
    env = {"SIGMA_DATA_DIR": str(tmp_path), "SIGMA_DATABASE_URL": ""}
    for run in range(2):
        process, _, lines = start_serve_process(env, "--demo")
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port_of(lines)}") as http:
                stats = (await http.get("/v1/stats", params={"days": 8})).json()["totals"]
                executions = (await http.get("/v1/executions", params={"pageSize": 500})).json()["executions"]
                signals = (
                    await http.get("/v1/decisions", params={"decisionType": "DECISION_TYPE_SIGNAL"})
                ).json()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, "".join(lines)
        assert int(stats["totalDecisions"]) == 160  # the second run seeds nothing more
        assert int(stats["skipCount"]) > int(stats["signalCount"]) > 0
        assert int(stats["riskRejectCount"]) > 0
        assert int(stats["closedCount"]) > 0 and int(stats["pendingCount"]) > 0
        assert 0 < stats["winRate"] < 1
        assert executions and {e["status"] for e in executions} == {"EXECUTION_STATUS_SIMULATED"}
        assert all(d["reasoning"] for d in signals["decisions"])
        if run == 1:
            assert "demo data not seeded: the decision log already has decisions" in "".join(lines)
