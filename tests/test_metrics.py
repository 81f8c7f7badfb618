"""Prometheus metrics at GET /metrics: grpc-ecosystem's gRPC server metrics, and the service's own."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.auth.policy import Role
from sigma_grpc.config import Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as dpb_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.metrics import GO_DEFAULT_BUCKETS, GrpcServerMetrics, Metrics
from sigma_grpc.storage.pool import create_pool
from tests.auth_env import TOKENS, bearer, write_tokens_file
from tests.execution_env import Starter
from tests.helpers import signal

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SERVICE = "sigma.v1.DecisionService"


@pytest.fixture(scope="module")
async def metered(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    """A server with tokens (so unauthenticated calls exist) and the HTTP gateway."""
    tokens = write_tokens_file(tmp_path_factory.mktemp("metrics"))
    pool = await create_pool(database_url, max_size=4)
    running = await start_server(
        pool,
        "127.0.0.1:0",
        Settings(reconcile_interval_s=3600, auth_tokens_file=tokens),
        http_addr="127.0.0.1:0",
    )
    yield running
    await running.stop(grace=1)
    await pool.close()


async def scrape(server: RunningServer) -> Samples:
    """GET /metrics over HTTP, without credentials, parsed with prometheus_client's parser."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grpc_labels(method: str) -> dict[str, str]:
    return {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": method}


async def test_grpc_calls_are_counted_by_method_and_code_as_grpc_ecosystem_names_them(
    metered: RunningServer, clean_db: asyncpg.Pool
) -> None:
    before = await scrape(metered)
    writer = bearer(TOKENS[Role.WRITER])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        stub = dpb_grpc.DecisionServiceStub(channel)
        request_id = f"metrics-{uuid.uuid4().hex}"
        logged = await stub.LogDecision(signal(symbol="METRICS", request_id=request_id), metadata=writer)
        assert not logged.replayed
        replay = await stub.LogDecision(signal(symbol="METRICS", request_id=request_id), metadata=writer)
        assert replay.replayed
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.LogDecision(signal(symbol="", trader_count=-1), metadata=writer)
        assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetDecision(dpb.GetDecisionRequest(id=str(uuid.uuid4())), metadata=writer)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.GetDecision(dpb.GetDecisionRequest(id=str(uuid.uuid4())))
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    after = await scrape(metered)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    log, get = grpc_labels("LogDecision"), grpc_labels("GetDecision")
    assert moved("grpc_server_started_total", **log) == 3
    assert moved("grpc_server_msg_received_total", **log) == 3
    assert moved("grpc_server_msg_sent_total", **log) == 2
    assert moved("grpc_server_handled_total", **log, grpc_code="OK") == 2
    assert moved("grpc_server_handled_total", **log, grpc_code="InvalidArgument") == 1
    assert moved("grpc_server_handling_seconds_count", **log) == 3
    assert moved("grpc_server_handling_seconds_bucket", **log, le="+Inf") == 3
    assert moved("grpc_server_started_total", **get) == 2
    assert moved("grpc_server_handled_total", **get, grpc_code="NotFound") == 1
    # Refused by authentication, before the handler: counted all the same.
    assert moved("grpc_server_handled_total", **get, grpc_code="Unauthenticated") == 1
    assert moved("grpc_server_msg_sent_total", **get) == 0
    # The Go client's default buckets, not prometheus_client's.
    buckets = {
        dict(labels)["le"]
        for name, labels in after
        if name == "grpc_server_handling_seconds_bucket" and dict(labels)["grpc_method"] == "LogDecision"
    }
    assert buckets == {*(str(b) for b in GO_DEFAULT_BUCKETS), "+Inf"}
    # One decision recorded: the replay is not a second one, the invalid one none.
    assert moved("sigma_decisions_logged_total", decision_type="signal", symbol="METRICS") == 1


async def test_metrics_are_open_and_count_the_gateway_s_requests_by_route(
    metered: RunningServer, clean_db: asyncpg.Pool
) -> None:
    before = await scrape(metered)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metered.http_port}", timeout=30) as http:
        ok = await http.get(f"/v1/decisions/{uuid.uuid4()}", headers=dict(bearer(TOKENS[Role.READER])))
        refused = await http.get("/v1/stats")
    assert ok.status_code == 404
    assert refused.status_code == 401
    after = await scrape(metered)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "GET", "route": "/v1/decisions/{id}"}
    assert moved("sigma_http_requests_total", **route, status="404") == 1
    assert moved("sigma_http_request_duration_seconds_count", **route) == 1
    assert moved("sigma_http_requests_total", method="GET", route="/v1/stats", status="401") == 1
    # The scrape before this one was counted too.
    assert moved("sigma_http_requests_total", method="GET", route="/metrics", status="200") == 1
    versions = [dict(labels) for name, labels in after if name == "sigma_grpc_build_info"]
    assert len(versions) == 1
    assert versions[0]["version"]
    assert value(after, "sigma_grpc_build_info", **versions[0]) == 1


async def test_the_status_is_the_one_the_client_gets_for_every_way_a_handler_ends() -> None:
    """OK, context.abort (raises), context.set_code (does not), and a crash (grpc.aio answers UNKNOWN)."""

    async def ok(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"ok"

    async def aborts(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no")

    async def sets_code(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
        return b""

    async def crashes(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        raise ValueError("a bug")

    handlers = {"Ok": ok, "Aborts": aborts, "SetsCode": sets_code, "Crashes": crashes}
    metrics = Metrics()
    server = grpc.aio.server(interceptors=[GrpcServerMetrics(metrics)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.v1.Faults",
                {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in handlers.items()},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        answers = {}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for name in handlers:
                call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    f"/test.v1.Faults/{name}"
                )
                try:
                    await call(b"", timeout=5)
                    answers[name] = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    answers[name] = error.code()
    finally:
        await server.stop(None)
    assert answers == {
        "Ok": grpc.StatusCode.OK,
        "Aborts": grpc.StatusCode.FAILED_PRECONDITION,
        "SetsCode": grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Crashes": grpc.StatusCode.UNKNOWN,
    }
    expected = {
        "Ok": "OK",
        "Aborts": "FailedPrecondition",
        "SetsCode": "ResourceExhausted",
        "Crashes": "Unknown",
    }
    registry = metrics.registry
    for method, code in expected.items():
        labels = {"grpc_type": "unary", "grpc_service": "test.v1.Faults", "grpc_method": method}
        assert registry.get_sample_value("grpc_server_started_total", labels) == 1
        assert registry.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": code}) == 1
        assert registry.get_sample_value("grpc_server_handling_seconds_count", labels) == 1
        sent = registry.get_sample_value("grpc_server_msg_sent_total", labels) or 0
        assert sent == (1 if code == "OK" else 0)


def test_the_dashboard_uses_only_metrics_the_service_exports() -> None:
    import json
    import re

    dashboard = json.loads(
        (Path(__file__).resolve().parent.parent / "deploy/grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    exported = {family.name + suffix for family in Metrics().registry.collect() for suffix in suffixes}
    for expr in exprs:
        for name in re.findall(r"\b(grpc_server_\w+|sigma_\w+)\b", expr):
            assert name in exported, (name, expr)


async def test_executions_the_reconciler_and_the_pool_are_measured(start: Starter) -> None:
    env = await start(hl_private_key=None)
    await env.enable(dry_run=True)
    execution = await env.execute(await env.signal())
    assert execution.status == epb.EXECUTION_STATUS_SIMULATED
    registry = env.server.metrics.registry
    assert registry.get_sample_value("sigma_executions_total", {"status": "simulated", "reason": ""}) == 1
    assert registry.get_sample_value("sigma_reconciler_last_pass_timestamp_seconds") == 0
    before = time.time()
    await env.server.executor.reconcile_once()
    assert registry.get_sample_value("sigma_reconciler_last_pass_timestamp_seconds", {}) >= before  # type: ignore[operator]
    assert registry.get_sample_value("sigma_executions_unsettled") == 0
    primary = {"pool": "primary"}
    assert registry.get_sample_value("sigma_db_pool_max_connections", primary) == 10
    assert 1 <= registry.get_sample_value("sigma_db_pool_connections", primary) <= 10  # type: ignore[operator]
    assert registry.get_sample_value("sigma_db_pool_connections_in_use", primary) == 0
    assert registry.get_sample_value("sigma_db_pool_acquire_seconds_count") >= 3  # type: ignore[operator]


def test_the_database_gauges_follow_the_health_monitor_s_view() -> None:
    metrics = Metrics()
    reachable: list[bool | None] = [None]
    metrics.watch_database(lambda: reachable[0], embedded=True)
    registry = metrics.registry
    assert registry.get_sample_value("sigma_database_up") == 0
    assert registry.get_sample_value("sigma_database_embedded") == 1
    reachable[0] = True
    assert registry.get_sample_value("sigma_database_up") == 1
    reachable[0] = False
    assert registry.get_sample_value("sigma_database_up") == 0
