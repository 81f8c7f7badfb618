"""The HTTP/JSON gateway: every route, its JSON, and grpc-gateway's error mapping, over real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import Settings
from sigma_grpc.gateway.routes import RouteError, routes_of
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.storage.pool import create_pool

SIGNAL = {
    "symbol": "BTC",
    "direction": "DIRECTION_LONG",
    "decisionType": "DECISION_TYPE_SIGNAL",
    "traderCount": 7,
    "agreementPct": 0.8,
    "effectiveK": 3.2,
    "priceAtDecision": "97123.5",
    "gates": [{"name": "supermajority", "passed": True, "value": 0.8, "threshold": 0.7}],
}
SKIP = {
    "symbol": "ETH",
    "direction": "DIRECTION_SHORT",
    "decisionType": "DECISION_TYPE_SKIP",
    "traderCount": 5,
    "agreementPct": 0.6,
    "effectiveK": 1.5,
    "gates": [
        {"name": "supermajority", "passed": False, "value": 0.6, "threshold": 0.7},
        {"name": "effective_k", "passed": True},
    ],
}


@pytest.fixture(scope="module")
async def gateway_server(database_url: str) -> AsyncIterator[RunningServer]:
    pool = await create_pool(database_url, max_size=4)
    running = await start_server(
        pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600), http_addr="127.0.0.1:0"
    )
    yield running
    await running.stop(grace=1)
    await pool.close()


@pytest.fixture
async def http(gateway_server: RunningServer, clean_db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway_server.http_port}", timeout=30
    ) as client:
        yield client


def reason(body: dict[str, Any]) -> str:
    info = next(d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert info["domain"] == "sigma.v1"
    return str(info["reason"])


def violations(body: dict[str, Any]) -> dict[str, str]:
    bad = next(d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest"))
    return {v["field"]: v["description"] for v in bad["fieldViolations"]}


async def log(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/v1/decisions", json=body)
    assert response.status_code == 200, response.text
    decision: dict[str, Any] = response.json()["decision"]
    return decision


# -- the routes ------------------------------------------------------------------------------------


def test_every_rpc_has_the_route_the_issue_names() -> None:
    routes = {
        (r.http_method, r.template, r.body)
        for r in routes_of(
            dpb.DESCRIPTOR.services_by_name["DecisionService"],
            epb.DESCRIPTOR.services_by_name["ExecutionService"],
        )
    }
    assert routes == {
        ("POST", "/v1/decisions", "*"),
        ("POST", "/v1/decisions:batch", "*"),
        ("GET", "/v1/decisions/{id}", ""),
        ("GET", "/v1/decisions", ""),
        ("GET", "/v1/stats", ""),
        ("GET", "/v1/signal-quality", ""),
        ("GET", "/v1/gate-analytics", ""),
        ("POST", "/v1/decisions/{decision_id}/outcome", "*"),
        ("POST", "/v1/executions", "*"),
        ("GET", "/v1/executions/{id}", ""),
        ("GET", "/v1/executions", ""),
        ("GET", "/v1/execution-config", ""),
        ("PATCH", "/v1/execution-config", "*"),
    }


async def test_log_get_list_and_outcome_in_proto3_json(http: httpx.AsyncClient) -> None:
    logged = await http.post("/v1/decisions", json={**SIGNAL, "requestId": "http-1"})
    assert logged.status_code == 200
    body = logged.json()
    assert body["replayed"] is False
    decision = body["decision"]
    assert decision["priceAtDecision"] == "97123.50000000"
    assert decision["direction"] == "DIRECTION_LONG"
    # Fields without presence are printed even when zero or false.
    assert decision["gates"][0]["passed"] is True
    assert decision["riskChecks"] == []
    skip = await log(http, SKIP)
    assert skip["gates"][1] == {"name": "effective_k", "passed": True}  # unset value and threshold stay out

    again = await http.post("/v1/decisions", json={**SIGNAL, "requestId": "http-1"})
    assert (again.json()["replayed"], again.json()["decision"]) == (True, decision)

    fetched = await http.get(f"/v1/decisions/{decision['id']}")
    assert fetched.json() == {"decision": decision}

    listed = await http.get("/v1/decisions", params={"decision_type": "DECISION_TYPE_SIGNAL"})
    assert [d["id"] for d in listed.json()["decisions"]] == [decision["id"]]
    assert listed.json()["nextPageToken"] == ""
    by_json_name = await http.get("/v1/decisions", params={"decisionType": "2", "pageSize": "1"})
    assert [d["id"] for d in by_json_name.json()["decisions"]] == [skip["id"]]

    closed = await http.post(
        f"/v1/decisions/{decision['id']}/outcome", json={"outcomePnl": "125.5", "outcomeRMultiple": 1.8}
    )
    assert closed.status_code == 200, closed.text
    assert (closed.json()["decision"]["outcomePnl"], closed.json()["decision"]["outcomeRMultiple"]) == (
        "125.50000000",
        1.8,
    )


async def test_stats_and_time_filters(http: httpx.AsyncClient) -> None:
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old = await log(http, {**SIGNAL, "decidedAt": (hour_ago - timedelta(days=3)).isoformat()})
    new = await log(http, {**SIGNAL, "decidedAt": hour_ago.isoformat()})
    stats = (await http.get("/v1/stats", params={"days": "1"})).json()
    assert stats["totals"]["totalDecisions"] == "1"  # int64 travels as a string
    assert stats["days"] == 1
    assert stats["totals"]["winRate"] == 0  # printed although zero
    recent = await http.get("/v1/decisions", params={"startTime": (hour_ago - timedelta(days=1)).isoformat()})
    assert [d["id"] for d in recent.json()["decisions"]] == [new["id"]]
    assert old["id"] != new["id"]


async def test_signal_quality_and_gate_analytics_routes(http: httpx.AsyncClient) -> None:
    await log(http, {**SIGNAL, "decidedAt": (datetime.now(UTC) - timedelta(hours=2)).isoformat()})
    # Repeated fields repeat their query parameter; enums go by name.
    quality = await http.get(
        "/v1/signal-quality",
        params=[
            ("days", "2"),
            ("bucketWidth", "BUCKET_WIDTH_HOUR"),
            ("agreementEdges", "0.5"),
            ("agreementEdges", "0.75"),
            ("agreementEdges", "1"),
        ],
    )
    assert quality.status_code == 200, quality.text
    body = quality.json()
    assert body["bucketWidth"] == "BUCKET_WIDTH_HOUR" and body["byAgreement"]["edges"] == [0.5, 0.75, 1]
    assert sum(int(b["signals"]) for b in body["timeSeries"]) == 1
    bad = await http.get("/v1/signal-quality", params={"bucketWidth": "BUCKET_WIDTH_YEAR"})
    assert bad.status_code == 400, bad.text
    analytics = await http.get("/v1/gate-analytics", params={"topCombinations": "3"})
    assert analytics.status_code == 200, analytics.text
    assert [g["name"] for g in analytics.json()["gates"]] == ["supermajority"]  # SIGNAL's one gate
    wrong = await http.get("/v1/gate-analytics", params={"topCombinations": "101"})
    assert (wrong.status_code, wrong.json()["details"][0]["reason"]) == (400, "VALIDATION_FAILED")


async def test_execution_routes(http: httpx.AsyncClient) -> None:
    config = await http.get("/v1/execution-config")
    assert config.status_code == 200
    assert config.json()["config"]["enabled"] is False
    patched = await http.patch(
        "/v1/execution-config",
        json={"config": {"hlMaxLeverage": 2}, "updateMask": "hlMaxLeverage"},
        headers={"x-sigma-actor": "alice"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["hlMaxLeverage"] == 2
    decision = await log(http, SIGNAL)
    refused = await http.post("/v1/executions", json={"decisionId": decision["id"]})
    assert refused.status_code == 400  # FAILED_PRECONDITION: execution is off
    assert reason(refused.json()) == "EXECUTION_DISABLED"
    assert (await http.get("/v1/executions")).json() == {"executions": [], "nextPageToken": ""}
    missing = await http.get(f"/v1/executions/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert reason(missing.json()) == "EXECUTION_NOT_FOUND"
    several = await http.get(
        "/v1/executions", params=[("decisionIds", decision["id"]), ("decisionIds", SIGNAL_ID)]
    )
    assert several.status_code == 200


SIGNAL_ID = "0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b"


async def test_the_audit_keeps_the_actor_header_only_as_a_note(
    http: httpx.AsyncClient, clean_db: asyncpg.Pool
) -> None:
    # Authentication is off here: the audit names where the call came from, and keeps what the
    # caller said about themselves beside it (tests/test_auth.py: the authenticated name).
    await http.patch(
        "/v1/execution-config",
        json={"config": {"maxSignalAgeS": 60}, "updateMask": "maxSignalAgeS"},
        # Where the call came from is the socket's peer, whatever a forwarded-for header claims.
        headers={"x-sigma-actor": "bob", "x-forwarded-for": "10.9.8.7"},
    )
    row = await clean_db.fetchrow("SELECT changed_by, note FROM execution_config_audit")
    assert row is not None
    assert re.fullmatch(r"anonymous \(127\.0\.0\.1:\d+ via the HTTP gateway\)", row["changed_by"])
    assert row["note"] == "bob"


# -- errors: grpc-gateway's mapping, the google.rpc.Status as the body ----------------------------------


async def test_invalid_argument_is_400_with_the_status_and_its_details(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/decisions", json={**SIGNAL, "agreementPct": 1.5})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    assert "agreement_pct" in body["message"]
    assert reason(body) == "VALIDATION_FAILED"
    assert violations(body) == {"agreement_pct": "must be between 0 and 1"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "expected_reason"),
    [
        ("GET", f"/v1/decisions/{SIGNAL_ID}", {}, 404, 5, "DECISION_NOT_FOUND"),
        ("GET", "/v1/decisions/not-a-uuid", {}, 400, 3, "VALIDATION_FAILED"),
        ("GET", "/v1/decisions", {"params": {"pageToken": "garbage"}}, 400, 3, "INVALID_PAGE_TOKEN"),
        ("GET", "/v1/decisions", {"params": {"decisionType": "7"}}, 400, 3, "VALIDATION_FAILED"),
        ("GET", "/v1/stats", {"params": {"days": "366"}}, 400, 3, "VALIDATION_FAILED"),
        (
            "POST",
            f"/v1/decisions/{SIGNAL_ID}/outcome",
            {"json": {"outcomePnl": "1", "outcomeRMultiple": 1}},
            404,
            5,
            "DECISION_NOT_FOUND",
        ),
    ],
)
async def test_errors_map_as_grpc_gateway_maps_them(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: int,
    expected_reason: str,
) -> None:
    response = await http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert reason(response.json()) == expected_reason


async def test_failed_precondition_and_already_exists(http: httpx.AsyncClient) -> None:
    skip = await log(http, SKIP)
    not_signal = await http.post(
        f"/v1/decisions/{skip['id']}/outcome", json={"outcomePnl": "1", "outcomeRMultiple": 1}
    )
    assert (not_signal.status_code, not_signal.json()["code"], reason(not_signal.json())) == (
        400,
        9,
        "NOT_A_SIGNAL",
    )
    await log(http, {**SIGNAL, "requestId": "once"})
    reused = await http.post("/v1/decisions", json={**SIGNAL, "requestId": "once", "traderCount": 9})
    assert (reused.status_code, reused.json()["code"], reason(reused.json())) == (409, 6, "REQUEST_ID_REUSED")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", ""),
        (b"[1, 2]", ""),
        (b'{"symbol": "BTC", "noSuchField": 1}', "noSuchField"),
        (b'{"traderCount": "many"}', ""),
        (b'{"gates": {"name": "x"}}', ""),
        (b"[" * 5000, ""),
    ],
    ids=["malformed", "array", "unknown-field", "wrong-type", "object-for-list", "deep"],
)
async def test_bodies_that_are_no_request_are_400_never_500(
    http: httpx.AsyncClient, clean_db: asyncpg.Pool, content: bytes, field: str
) -> None:
    response = await http.post("/v1/decisions", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 3
    assert reason(response.json()) == "VALIDATION_FAILED"
    assert list(violations(response.json())) == [field]
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"noSuchParam": "1"}, "noSuchParam"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"startTime": "yesterday"}, "startTime"),
        ({"symbol": ["BTC", "ETH"]}, "symbol"),
    ],
)
async def test_bad_query_parameters_are_400(
    http: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await http.get("/v1/decisions", params=params)
    assert response.status_code == 400, response.text
    assert list(violations(response.json())) == [field]


def test_the_status_mapping_is_grpc_gateways() -> None:
    import grpc

    from sigma_grpc.gateway.errors import HTTP_STATUS

    expected = {
        "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
        "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    }  # fmt: skip
    assert {code.name: HTTP_STATUS[code] for code in grpc.StatusCode} == expected


async def test_a_service_out_of_reach_is_503(unused_port: int) -> None:
    from sigma_grpc.gateway.server import GatewayServer

    gateway = GatewayServer(f"127.0.0.1:{unused_port}")  # nothing listens there
    port = await gateway.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/v1/stats")
        assert (response.status_code, response.json()["code"]) == (503, 14)
    finally:
        await gateway.stop()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unknown_routes_and_methods(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/nothing")
    assert (missing.status_code, missing.json()["code"]) == (404, 5)
    not_allowed = await http.delete("/v1/decisions")
    assert (not_allowed.status_code, not_allowed.json()["code"]) == (405, 12)
    with_body = await http.request(
        "GET", "/v1/stats", content=b'{"days": 1}', headers={"content-type": "application/json"}
    )
    assert with_body.status_code == 400


@pytest.mark.parametrize(
    ("template", "body"),
    [("/v1/{parent=things/*}", ""), ("/v1/{nested.id}", ""), ("/v1/{missing}", ""), ("/v1/things", "nope")],
)
def test_an_annotation_outside_the_supported_subset_is_refused_at_start(template: str, body: str) -> None:
    from google.api import annotations_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool

    package = f"gateway_test_{uuid.uuid4().hex}"
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package}.proto", package=package, dependency=["google/api/annotations.proto"], syntax="proto3"
    )
    file.message_type.add(name="Req").field.add(name="parent", number=1, type=9, label=1)
    file.message_type.add(name="Resp")
    method = file.service.add(name="S").method.add(
        name="M", input_type=f".{package}.Req", output_type=f".{package}.Resp"
    )
    method.options.Extensions[annotations_pb2.http].get = template
    method.options.Extensions[annotations_pb2.http].body = body
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(file.SerializeToString())
    with pytest.raises(RouteError, match=f"{package}.S.M"):
        routes_of(pool.FindServiceByName(f"{package}.S"))


# -- the plan's routes, kept for hl-stream's existing proxy --------------------------------------------


async def test_the_plans_decision_list_with_type_words_offset_and_stats(http: httpx.AsyncClient) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    signals = [
        await log(http, {**SIGNAL, "decidedAt": (start + timedelta(minutes=i)).isoformat()}) for i in range(5)
    ]
    await log(http, {**SKIP, "decidedAt": (start + timedelta(minutes=10)).isoformat()})
    page = (
        await http.get("/dashboard/api/decisions", params={"type": "signal", "limit": 2, "offset": 1})
    ).json()
    newest_first = [s["id"] for s in reversed(signals)]
    assert [d["id"] for d in page["items"]] == newest_first[1:3]
    assert page["items"][0]["decisionType"] == "DECISION_TYPE_SIGNAL"
    assert page["stats"]["totals"]["totalDecisions"] == "6"
    only_eth = (await http.get("/dashboard/api/decisions", params={"symbol": "ETH"})).json()
    assert [d["symbol"] for d in only_eth["items"]] == ["ETH"]
    assert only_eth["stats"]["totals"]["totalDecisions"] == "1"  # the stats follow the symbol filter
    everything = (await http.get("/dashboard/api/decisions")).json()
    assert len(everything["items"]) == 6
    stats = (await http.get("/dashboard/api/decisions/stats", params={"days": 1})).json()
    assert (stats["days"], stats["totals"]["signalCount"]) == (1, "5")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "buy"}, "type"),
        ({"offset": "1001"}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"symbol": "BT-C"}, "symbol"),
        ({"pageSize": "10"}, "pageSize"),  # not this route's: silently ignoring it would page forever
        ({"type": ["signal", "skip"]}, "type"),
    ],
)
async def test_the_plans_routes_refuse_bad_parameters(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get("/dashboard/api/decisions", params=params)
    assert response.status_code == 400, response.text
    assert list(violations(response.json())) == [field]
    bad_days = await http.get("/dashboard/api/decisions/stats", params={"days": "400"})
    assert list(violations(bad_days.json())) == ["days"]


# -- findings of the gateway's review ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"decisionType": "\u00b2"}, "decisionType"),  # a superscript two: a digit to str.isdigit, not to int
        ({"decisionType": "\u0663"}, "decisionType"),  # an Arabic-Indic three
        ({"pageSize": "1_0"}, "pageSize"),  # int() reads underscores
        ({"startTime": "yesterday"}, "startTime"),
    ],
)
async def test_odd_query_values_are_400_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get("/v1/decisions", params=params)
    assert response.status_code == 400, response.text
    assert list(violations(response.json())) == [field]


@pytest.mark.parametrize(
    "content",
    [b'{"\\ud800": 1}', b'{"direction": "\\ud800"}', b'{"symbol": "BTC\\udfff"}'],
    ids=["surrogate-key", "surrogate-enum", "surrogate-string"],
)
async def test_lone_surrogates_in_a_body_are_400(http: httpx.AsyncClient, content: bytes) -> None:
    response = await http.post("/v1/decisions", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert reason(response.json()) == "VALIDATION_FAILED"


@pytest.mark.parametrize("value", [b"\xe9", b"a\tb"], ids=["non-ascii", "tab"])
async def test_headers_that_cannot_be_grpc_metadata_are_400(http: httpx.AsyncClient, value: bytes) -> None:
    response = await http.get("/v1/stats", headers={b"x-sigma-actor": value})
    assert response.status_code == 400, response.text
    assert list(violations(response.json())) == ["x-sigma-actor"]


async def test_a_body_must_be_declared_json(http: httpx.AsyncClient, clean_db: asyncpg.Pool) -> None:
    """A cross-site page can send text/plain or a form without asking; it cannot send JSON unasked."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        response = await http.post("/v1/decisions", content=json.dumps(SIGNAL).encode(), headers=headers)
        assert response.status_code == 415, (content_type, response.text)
    charset = await http.post(
        "/v1/decisions",
        content=json.dumps(SIGNAL).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 1


async def test_a_loopback_gateway_answers_only_to_loopback_host_names(http: httpx.AsyncClient) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not reach the API."""
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example"):
        response = await http.get("/v1/execution-config", headers={"host": host})
        assert response.status_code == 403, (host, response.text)
    for host in ("localhost", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST"):
        assert (await http.get("/v1/execution-config", headers={"host": host})).status_code == 200, host


async def test_a_body_over_the_limit_is_413_and_not_read_whole(http: httpx.AsyncClient) -> None:
    from sigma_grpc.gateway.app import MAX_BODY_BYTES

    declared = await http.post(
        "/v1/decisions",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert declared.status_code == 413, declared.text

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    streamed = await http.post(
        "/v1/decisions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text


async def test_a_page_of_large_decisions_fits(http: httpx.AsyncClient, clean_db: asyncpg.Pool) -> None:
    """500 decisions at the contract's limits (64 gates with 64-character names): over gRPC's default 4 MB."""
    gates = [
        {"name": f"g{i:02d}".ljust(64, "x"), "passed": True, "value": 0.5, "threshold": 0.5}
        for i in range(64)
    ]
    await clean_db.execute(
        """
        INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct, effective_k,
                                   gates, risk_checks, reasoning)
        SELECT 'BTC', 'long', 'signal', 5, 0.8, 3.0, $1::jsonb, $1::jsonb, repeat('r', 400)
        FROM generate_series(1, 500)
        """,
        gates,
    )
    response = await http.get("/v1/decisions", params={"pageSize": 500})
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["decisions"]) == 500


async def test_the_gateway_reaches_the_grpc_port_on_the_address_it_listens_on(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=2)
    running = await start_server(
        pool, "127.0.0.2:0", Settings(reconcile_interval_s=3600), http_addr="127.0.0.1:0"
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}") as client:
            assert (await client.get("/v1/stats")).status_code == 200
    finally:
        await running.stop(grace=1)
        await pool.close()


async def test_a_stop_does_not_wait_past_its_grace_for_a_stalled_request(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=2)
    running = await start_server(
        pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600), http_addr="127.0.0.1:0"
    )
    _, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    try:
        # A request whose body never finishes arriving.
        writer.write(
            b"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        await asyncio.wait_for(running.stop(grace=1), timeout=10)
    finally:
        writer.close()
        await pool.close()
