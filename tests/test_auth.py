"""Authentication and roles over gRPC and the HTTP gateway, TLS and mutual TLS, and the audit's "who".

Each server here is a real grpc.aio server (and gateway) on free loopback ports,
configured the way an operator would: a tokens file, certificates made by
`trustme` in the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal as signals
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
import trustme
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sigma_grpc.api.authentication import Authentication
from sigma_grpc.auth.credentials import CredentialsError, parse_env, parse_file_text
from sigma_grpc.auth.policy import METHOD_ROLES, Role
from sigma_grpc.auth.store import CredentialStore
from sigma_grpc.config import ConfigError, Settings
from sigma_grpc.domain.execution import Side
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as dpb_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.storage.executions import ExecutionStore
from sigma_grpc.storage.pool import Database
from tests.auth_env import (
    CERT_IDENTITY,
    CERT_NAME,
    NAMES,
    TOKENS,
    UNKNOWN_TOKEN,
    Certificates,
    Served,
    bearer,
    serving,
    tls_settings,
    tokens_text,
    write_tokens_file,
)
from tests.execution_env import MAIN_KEY, Starter, signal_request
from tests.fake_hyperliquid import FakeHyperliquid
from tests.helpers import ROOT, error_reason, signal
from tests.secret_scan import leaks, register_secret, scan, watch_output

PROTOS = ROOT / "protos" / "sigma" / "v1"


# -- the policy ------------------------------------------------------------------------------------


def test_every_method_has_the_role_the_issue_gives_it() -> None:
    assert {method.rsplit("/", 1)[1]: role for method, role in METHOD_ROLES.items()} == {
        "GetDecision": Role.READER,
        "ListDecisions": Role.READER,
        "GetStats": Role.READER,
        "GetSignalQuality": Role.READER,
        "GetGateAnalytics": Role.READER,
        "GetExecution": Role.READER,
        "ListExecutions": Role.READER,
        "GetExecutionConfig": Role.READER,
        "LogDecision": Role.WRITER,
        "LogDecisions": Role.WRITER,
        "RecordOutcome": Role.WRITER,
        "ExecuteSignal": Role.EXECUTOR,
        "UpdateExecutionConfig": Role.ADMIN,
    }
    contract = {
        f"/{service.full_name}/{method.name}"
        for module in (dpb, epb)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(METHOD_ROLES) == contract


def test_each_rpc_comment_names_the_role_the_policy_enforces() -> None:
    documented: dict[str, str] = {}
    for proto in PROTOS.glob("*_service.proto"):
        service = ""
        comment: list[str] = []
        for line in proto.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("service "):
                service = stripped.split()[1]
            if stripped.startswith("//"):
                comment.append(stripped)
                continue
            match = re.match(r"rpc (\w+)\(", stripped)
            if match:
                role = re.search(r"Role: `(\w+)` or above\.", " ".join(comment))
                assert role, f"{match.group(1)} does not name its role"
                documented[f"/sigma.v1.{service}/{match.group(1)}"] = role.group(1)
            comment = []
    assert documented == {method: role.label for method, role in METHOD_ROLES.items()}


async def test_a_method_the_policy_does_not_list_is_refused_to_everyone() -> None:
    async def ping(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"pong"

    handler = grpc.method_handlers_generic_handler(
        "sigma.v1.DecisionService", {"Undeclared": grpc.unary_unary_rpc_method_handler(ping)}
    )
    admin = CredentialStore(parse_env(f"alice admin {TOKENS[Role.ADMIN]}"))
    for store in (None, admin):  # authentication off, and an admin's token
        server = grpc.aio.server(interceptors=[Authentication(store)])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    "/sigma.v1.DecisionService/Undeclared"
                )
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(b"", metadata=bearer(TOKENS[Role.ADMIN]), timeout=5)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_reason(caught.value) == "ROLE_NOT_ALLOWED"
        finally:
            await server.stop(None)


# -- the tokens file ---------------------------------------------------------------------------------


def test_a_tokens_file_maps_tokens_digests_and_certificates_to_named_roles() -> None:
    hashed = register_secret("a-token-kept-only-as-its-digest")
    credentials = parse_file_text(
        tokens_text(f"ops admin sha256:{hashlib.sha256(hashed.encode()).hexdigest()}  # on-call\n"), "tokens"
    )
    for role, token in TOKENS.items():
        identity = credentials.by_token(token)
        assert identity is not None and (identity.name, identity.role) == (NAMES[role], role)
    ops = credentials.by_token(hashed)
    assert ops is not None and (ops.name, ops.role, ops.method) == ("ops", Role.ADMIN, "token")
    assert credentials.by_token(UNKNOWN_TOKEN) is None
    assert credentials.by_token(f"sha256:{hashlib.sha256(hashed.encode()).hexdigest()}") is None
    by_cert = credentials.by_certificate(["other.example", CERT_NAME])
    assert by_cert is not None and (by_cert.name, by_cert.role) == (CERT_IDENTITY, Role.EXECUTOR)
    assert credentials.by_certificate(["other.example"]) is None
    assert "token" not in repr(credentials).replace("tokens", "")


def test_the_same_name_may_hold_two_tokens_while_one_is_rotated() -> None:
    old, new = register_secret("rotation-old-0123456789"), register_secret("rotation-new-0123456789")
    credentials = parse_env(f"alice admin {old}, alice admin {new}")
    assert credentials.by_token(old) == credentials.by_token(new)


BAD_LINES = [
    ("alice admin", "line 2: expected NAME ROLE TOKEN, found 2 fields"),
    ("alice superuser {token}", "line 2: the second field must be a role"),
    ("alice {token} admin", "line 2: the second field must be a role"),
    ("alice admin short", "line 2: the token is shorter than 16 characters"),
    ("alice admin sha256:abc", "line 2: sha256: needs 64 hex digits"),
    ("alice admin cert:", "line 2: cert: needs the certificate's subject alternative name"),
    ("-alice admin {token}", "line 2: NAME must be"),
    ("alice admin {token} extra", "line 2: expected NAME ROLE TOKEN, found 4 fields"),
    ("dashboard reader {token}\ndashboard admin {other}", "line 3: dashboard already has the role reader"),
    ("a reader {token}\nb reader {token}", "line 3: the same token is already listed"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES, ids=[line for line, _ in BAD_LINES])
def test_a_malformed_line_is_named_and_its_token_never_shown(line: str, message: str) -> None:
    token = register_secret("malformed-" + uuid.uuid4().hex)
    other = register_secret("malformed-" + uuid.uuid4().hex)
    text = "# comment\n" + line.format(token=token, other=other) + "\n"
    with pytest.raises(CredentialsError) as caught:
        parse_file_text(text, "/etc/sigma/tokens")
    assert f"/etc/sigma/tokens {message}" in str(caught.value)
    assert not leaks([str(caught.value)])


def test_inline_tokens_are_numbered_as_entries() -> None:
    with pytest.raises(CredentialsError, match="SIGMA_AUTH_TOKENS entry 2: the second field must be a role"):
        parse_env(f"alice admin {TOKENS[Role.ADMIN]},bob root {TOKENS[Role.READER]}")


# -- the settings: secure by default ------------------------------------------------------------------


def test_without_credentials_only_loopback_addresses_may_be_bound(tmp_path: Path) -> None:
    for addr in ("127.0.0.1:0", "[::1]:0", "localhost:0"):
        Settings.from_env({"SIGMA_GRPC_ADDR": addr, "SIGMA_HTTP_ADDR": "off"})
    with pytest.raises(
        ConfigError, match=r"SIGMA_GRPC_ADDR is 0\.0\.0\.0:50051, which other machines can reach"
    ):
        Settings.from_env({"SIGMA_GRPC_ADDR": "0.0.0.0:50051"})
    with pytest.raises(ConfigError, match=r"SIGMA_HTTP_ADDR is 10\.1\.2\.3:8080"):
        Settings.from_env({"SIGMA_HTTP_ADDR": "10.1.2.3:8080"})
    assert Settings.from_env({"SIGMA_GRPC_ADDR": "0.0.0.0:50051", "SIGMA_AUTH": "none"}).auth_none
    tokens = write_tokens_file(tmp_path)
    settings = Settings.from_env({"SIGMA_GRPC_ADDR": "0.0.0.0:50051", "SIGMA_AUTH_TOKENS_FILE": str(tokens)})
    assert settings.auth_tokens_file == tokens


def test_contradictory_security_settings_refuse_to_start(tmp_path: Path) -> None:
    tokens = str(write_tokens_file(tmp_path))
    inline = f"alice admin {TOKENS[Role.ADMIN]}"
    cases = [
        ({"SIGMA_AUTH_TOKENS_FILE": tokens, "SIGMA_AUTH_TOKENS": inline}, "not both"),
        ({"SIGMA_AUTH": "none", "SIGMA_AUTH_TOKENS": inline}, "SIGMA_AUTH=none turns authentication off"),
        ({"SIGMA_AUTH": "off"}, "SIGMA_AUTH must be unset or none"),
        ({"SIGMA_TLS_CERT": tokens}, "SIGMA_TLS_CERT and SIGMA_TLS_KEY go together"),
        ({"SIGMA_TLS_CLIENT_CA": tokens}, "needs SIGMA_TLS_CERT"),
        ({"SIGMA_AUTH_TOKENS_FILE": str(tmp_path / "missing")}, "is not a readable file"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env)
    assert "alice" not in repr(Settings.from_env({"SIGMA_AUTH_TOKENS": inline}))


# -- servers ------------------------------------------------------------------------------------------------


@pytest.fixture
async def guarded(database_url: str, clean_db: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(reconcile_interval_s=3600, auth_tokens_file=write_tokens_file(tmp_path))
    async with serving(database_url, settings) as served:
        yield served


async def _state(db: asyncpg.Pool) -> tuple[Any, ...]:
    """What a refused call must not change."""
    row = await db.fetchrow(
        """
        SELECT (SELECT count(*) FROM decision_logs) AS decisions,
               (SELECT count(*) FROM decision_logs WHERE outcome_pnl IS NOT NULL) AS outcomes,
               (SELECT count(*) FROM execution_logs) AS executions,
               (SELECT count(*) FROM execution_config_audit) AS audit,
               (SELECT hl_max_leverage FROM execution_config) AS leverage
        """
    )
    assert row is not None
    return tuple(row)


CALLERS: list[Role | str | None] = [None, "unknown", *Role]


def _caller_metadata(caller: Role | str | None) -> tuple[tuple[str, str], ...]:
    if caller is None:
        return ()
    return bearer(TOKENS[caller] if isinstance(caller, Role) else UNKNOWN_TOKEN)


def _expected(needed: Role, caller: Role | str | None) -> str | None:
    """The refusal `caller` gets for a method needing `needed`; None: let through."""
    if not isinstance(caller, Role):
        return "UNAUTHENTICATED"
    return None if caller >= needed else "PERMISSION_DENIED"


# -- the matrix over gRPC ---------------------------------------------------------------------------------

GrpcCall = Callable[[Served, str, tuple[tuple[str, str], ...]], Awaitable[object]]


def _grpc_calls(leverage: int) -> dict[str, tuple[GrpcCall, grpc.StatusCode]]:
    """Each RPC: a call that passes validation, and its outcome once let through."""
    ok, disabled, missing = grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND
    mask = field_mask_pb2.FieldMask(paths=["hl_max_leverage"])
    return {
        "LogDecision": (lambda s, d, m: s.decisions.LogDecision(signal(), metadata=m), ok),
        "LogDecisions": (
            lambda s, d, m: s.decisions.LogDecisions(
                dpb.LogDecisionsRequest(decisions=[signal()]), metadata=m
            ),
            ok,
        ),
        "GetDecision": (
            lambda s, d, m: s.decisions.GetDecision(dpb.GetDecisionRequest(id=d), metadata=m),
            ok,
        ),
        "ListDecisions": (
            lambda s, d, m: s.decisions.ListDecisions(dpb.ListDecisionsRequest(), metadata=m),
            ok,
        ),
        "GetStats": (lambda s, d, m: s.decisions.GetStats(dpb.GetStatsRequest(), metadata=m), ok),
        "GetSignalQuality": (
            lambda s, d, m: s.decisions.GetSignalQuality(dpb.GetSignalQualityRequest(), metadata=m),
            ok,
        ),
        "GetGateAnalytics": (
            lambda s, d, m: s.decisions.GetGateAnalytics(dpb.GetGateAnalyticsRequest(), metadata=m),
            ok,
        ),
        "RecordOutcome": (
            lambda s, d, m: s.decisions.RecordOutcome(
                dpb.RecordOutcomeRequest(decision_id=d, outcome_pnl="12.5", outcome_r_multiple=0.5),
                metadata=m,
            ),
            ok,
        ),
        "ExecuteSignal": (
            lambda s, d, m: s.executions.ExecuteSignal(epb.ExecuteSignalRequest(decision_id=d), metadata=m),
            disabled,
        ),
        "GetExecution": (
            lambda s, d, m: s.executions.GetExecution(
                epb.GetExecutionRequest(id=str(uuid.uuid4())), metadata=m
            ),
            missing,
        ),
        "ListExecutions": (
            lambda s, d, m: s.executions.ListExecutions(epb.ListExecutionsRequest(), metadata=m),
            ok,
        ),
        "GetExecutionConfig": (
            lambda s, d, m: s.executions.GetExecutionConfig(epb.GetExecutionConfigRequest(), metadata=m),
            ok,
        ),
        "UpdateExecutionConfig": (
            lambda s, d, m: s.executions.UpdateExecutionConfig(
                epb.UpdateExecutionConfigRequest(
                    config=epb.ExecutionConfig(hl_max_leverage=leverage), update_mask=mask
                ),
                metadata=m,
            ),
            ok,
        ),
    }


def _role_of(rpc: str) -> Role:
    return next(role for method, role in METHOD_ROLES.items() if method.endswith(f"/{rpc}"))


async def _admin_signal(served: Served) -> str:
    logged = await served.decisions.LogDecision(signal(), metadata=bearer(TOKENS[Role.ADMIN]))
    return logged.decision.id


async def _outcome(call: Awaitable[object]) -> tuple[grpc.StatusCode, str | None]:
    """The call's status code and ErrorInfo reason."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error_reason(error)
    return grpc.StatusCode.OK, None


async def test_every_rpc_for_every_caller_over_grpc(guarded: Served) -> None:
    decision_id = await _admin_signal(guarded)
    calls = _grpc_calls(leverage=2)
    assert set(calls) == {method.rsplit("/", 1)[1] for method in METHOD_ROLES}
    for rpc, (call, allowed) in calls.items():
        needed = _role_of(rpc)
        for caller in CALLERS:
            before = await _state(guarded.db)
            refusal = _expected(needed, caller)
            code, reason = await _outcome(call(guarded, decision_id, _caller_metadata(caller)))
            if refusal is None:
                assert code == allowed, (rpc, caller, code)
                continue
            assert code.name == refusal, (rpc, caller, code)
            expected_reason = "NOT_AUTHENTICATED" if refusal == "UNAUTHENTICATED" else "ROLE_NOT_ALLOWED"
            assert reason == expected_reason, (rpc, caller)
            assert await _state(guarded.db) == before, (rpc, caller)


async def test_health_and_reflection_need_no_credentials(guarded: Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.server.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        services = [s.name async for r in stream for s in r.list_services_response.service]
    assert "sigma.v1.DecisionService" in services


async def test_a_malformed_authorization_is_unauthenticated(guarded: Served) -> None:
    for value in (TOKENS[Role.ADMIN], f"Basic {TOKENS[Role.ADMIN]}", "Bearer ", "Bearer"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await guarded.decisions.GetStats(dpb.GetStatsRequest(), metadata=(("authorization", value),))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer <token>" in (caught.value.details() or "")
        assert TOKENS[Role.ADMIN] not in (caught.value.details() or "")


async def test_nobody_can_pose_as_the_gateway_to_claim_a_certificate(guarded: Served) -> None:
    forged = (("x-sigma-gateway-key", "guess"), ("x-sigma-client-cert-san", CERT_NAME))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await guarded.decisions.GetStats(dpb.GetStatsRequest(), metadata=forged)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Over HTTP, the gateway forwards neither header: the request has no credentials.
    response = await guarded.http.get("/v1/stats", headers=dict(forged))
    assert response.status_code == 401


# -- the matrix over the gateway -------------------------------------------------------------------------


def _http_calls(decision_id: str, leverage: int) -> dict[str, tuple[str, str, dict[str, Any] | None, int]]:
    """Each RPC's route: method, path, JSON body, and its status once let through."""
    body = {
        "symbol": "BTC",
        "direction": "DIRECTION_LONG",
        "decisionType": "DECISION_TYPE_SIGNAL",
        "traderCount": 7,
        "agreementPct": 0.8,
        "effectiveK": 3.2,
        "priceAtDecision": "97123.5",
        "gates": [{"name": "supermajority", "passed": True, "value": 0.8, "threshold": 0.7}],
    }
    return {
        "LogDecision": ("POST", "/v1/decisions", body, 200),
        "LogDecisions": ("POST", "/v1/decisions:batch", {"decisions": [body]}, 200),
        "GetDecision": ("GET", f"/v1/decisions/{decision_id}", None, 200),
        "ListDecisions": ("GET", "/v1/decisions", None, 200),
        "GetStats": ("GET", "/v1/stats", None, 200),
        "GetSignalQuality": ("GET", "/v1/signal-quality", None, 200),
        "GetGateAnalytics": ("GET", "/v1/gate-analytics", None, 200),
        "RecordOutcome": (
            "POST",
            f"/v1/decisions/{decision_id}/outcome",
            {"outcomePnl": "12.5", "outcomeRMultiple": 0.5},
            200,
        ),
        "ExecuteSignal": ("POST", "/v1/executions", {"decisionId": decision_id}, 400),
        "GetExecution": ("GET", f"/v1/executions/{uuid.uuid4()}", None, 404),
        "ListExecutions": ("GET", "/v1/executions", None, 200),
        "GetExecutionConfig": ("GET", "/v1/execution-config", None, 200),
        "UpdateExecutionConfig": (
            "PATCH",
            "/v1/execution-config",
            {"config": {"hlMaxLeverage": leverage}, "updateMask": "hlMaxLeverage"},
            200,
        ),
    }


async def test_every_route_for_every_caller_over_the_gateway(guarded: Served) -> None:
    decision_id = await _admin_signal(guarded)
    calls = _http_calls(decision_id, leverage=4)
    assert set(calls) == set(_grpc_calls(4))
    for rpc, (method, path, body, allowed) in calls.items():
        needed = _role_of(rpc)
        for caller in CALLERS:
            before = await _state(guarded.db)
            headers = dict(_caller_metadata(caller))
            response = await guarded.http.request(method, path, json=body, headers=headers)
            refusal = _expected(needed, caller)
            if refusal is None:
                assert response.status_code == allowed, (rpc, caller, response.text)
                continue
            assert response.status_code == (401 if refusal == "UNAUTHENTICATED" else 403), (rpc, caller)
            assert response.json()["code"] == (16 if refusal == "UNAUTHENTICATED" else 7)
            if refusal == "UNAUTHENTICATED":
                assert response.headers["www-authenticate"].startswith("Bearer")
            assert await _state(guarded.db) == before, (rpc, caller)


async def test_the_dashboard_files_are_open_and_its_data_is_not(guarded: Served) -> None:
    page = await guarded.http.get("/dashboard/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert (await guarded.http.get("/dashboard/api/decisions")).status_code == 401
    reader = {"authorization": f"Bearer {TOKENS[Role.READER]}"}
    assert (await guarded.http.get("/dashboard/api/decisions", headers=reader)).status_code == 200


# -- the audit names the authenticated caller ---------------------------------------------------------


async def test_the_audit_records_the_authenticated_name_and_the_actor_header_only_as_a_note(
    guarded: Served,
) -> None:
    admin = (*bearer(TOKENS[Role.ADMIN]), ("x-sigma-actor", "bob (ticket OPS-42)"))
    await guarded.executions.UpdateExecutionConfig(
        epb.UpdateExecutionConfigRequest(
            config=epb.ExecutionConfig(hl_max_leverage=2),
            update_mask=field_mask_pb2.FieldMask(paths=["hl_max_leverage"]),
        ),
        metadata=admin,
    )
    response = await guarded.http.patch(
        "/v1/execution-config",
        json={"config": {"hlMaxLeverage": 4}, "updateMask": "hlMaxLeverage"},
        headers=dict(admin),
    )
    assert response.status_code == 200
    rows = await guarded.db.fetch(
        "SELECT changed_by, note, new_value FROM execution_config_audit ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("alice", "bob (ticket OPS-42)", "2"),
        ("alice", "bob (ticket OPS-42)", "4"),
    ]
    too_long = (*bearer(TOKENS[Role.ADMIN]), ("x-sigma-actor", "x" * 201))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await guarded.executions.UpdateExecutionConfig(
            epb.UpdateExecutionConfigRequest(
                config=epb.ExecutionConfig(hl_max_leverage=5),
                update_mask=field_mask_pb2.FieldMask(paths=["hl_max_leverage"]),
            ),
            metadata=too_long,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await guarded.db.fetchval("SELECT count(*) FROM execution_config_audit") == 2
    every_row = await guarded.db.fetch("SELECT * FROM execution_config_audit")
    scan([json.dumps([dict(r) for r in every_row], default=str)], "the audit table")


async def test_the_gateway_names_the_socket_s_peer_never_a_forwarded_for_header(
    guarded: Served,
) -> None:
    admin = {"authorization": f"Bearer {TOKENS[Role.ADMIN]}"}
    refused = await guarded.http.get("/v1/stats", headers={"x-forwarded-for": "10.9.8.7"})
    assert refused.status_code == 401
    odd = await guarded.http.get("/v1/stats", headers=[(b"x-forwarded-for", "ü".encode("latin-1"))])
    assert odd.status_code == 401  # not a 500: the header is not read at all
    allowed = await guarded.http.get("/v1/stats", headers={**admin, "x-forwarded-for": "10.9.8.7"})
    assert allowed.status_code == 200


async def test_the_relay_key_is_refused_outside_the_private_socket(guarded: Served) -> None:
    gateway = guarded.server.gateway
    assert gateway is not None
    key = gateway._relay_key  # the real key, as if it had leaked
    assert key
    relayed = (("x-sigma-gateway-key", key), ("x-sigma-client-cert-san", CERT_NAME))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await guarded.decisions.GetStats(dpb.GetStatsRequest(), metadata=relayed)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_each_execution_records_who_asked_for_it(
    start: Starter, fake: FakeHyperliquid, tmp_path: Path
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(auth_tokens_file=write_tokens_file(tmp_path))
    admin, executor = bearer(TOKENS[Role.ADMIN]), bearer(TOKENS[Role.EXECUTOR])
    await env.executions.UpdateExecutionConfig(
        epb.UpdateExecutionConfigRequest(
            config=epb.ExecutionConfig(enabled=True, hl_enabled=True, dry_run=True),
            update_mask=field_mask_pb2.FieldMask(paths=["enabled", "hl_enabled", "dry_run"]),
        ),
        metadata=admin,
    )
    decision = await env.decisions.LogDecision(signal_request(), metadata=executor)
    request = epb.ExecuteSignalRequest(decision_id=decision.decision.id)
    executed = (await env.executions.ExecuteSignal(request, metadata=executor, timeout=20)).execution
    assert executed.requested_by == NAMES[Role.EXECUTOR]
    # Asking again (as the admin) returns the same execution, still recorded as hl-decide's.
    again = (await env.executions.ExecuteSignal(request, metadata=admin, timeout=20)).execution
    assert (again.id, again.requested_by) == (executed.id, NAMES[Role.EXECUTOR])
    assert await env.db.fetchval("SELECT requested_by FROM execution_logs") == NAMES[Role.EXECUTOR]
    # Set once, at the claim: not even a pending execution's can be changed afterwards.
    other = await env.decisions.LogDecision(signal_request("BTC"), metadata=executor)
    claimed = await ExecutionStore(Database(env.db)).claim(
        decision_id=uuid.UUID(other.decision.id),
        symbol="BTC",
        side=Side.BUY,
        leverage=1,
        cloid="0x" + "ab" * 16,
        network="testnet",
        account_address=None,
        dry_run=True,
        order_expires_at=datetime.now(UTC) + timedelta(minutes=1),
        requested_by="hl-decide",
    )
    assert claimed is not None and claimed.requested_by == "hl-decide"
    with pytest.raises(asyncpg.RaiseError, match="set once"):
        await env.db.execute("UPDATE execution_logs SET requested_by = 'alice' WHERE id = $1", claimed.id)


async def test_ip_address_certificate_names_match_on_both_ports(
    database_url: str, clean_db: asyncpg.Pool, tmp_path: Path, certificates: Certificates
) -> None:
    files = certificates.server_files()
    # Written long-hand in the file; certificates and TLS libraries spell it their own ways.
    settings = tls_settings(
        files, tmp_path, mutual=True, extra_tokens="v6-box reader cert:2001:DB8:0:0:0:0:0:1\n"
    )
    client = certificates.client("2001:db8::1")
    with_cert = ssl.create_default_context(cafile=str(files["ca"]))
    with_cert.load_cert_chain(*client)
    async with serving(
        database_url,
        settings,
        channel_credentials=certificates.grpc_credentials(client),
        http_verify=with_cert,
    ) as served:
        assert (await served.decisions.GetStats(dpb.GetStatsRequest())).days == 7
        assert (await served.http.get("/v1/stats")).status_code == 200
        assert (await served.http.post("/v1/decisions", json={})).status_code == 403


async def test_a_reload_never_puts_an_older_file_in_force_after_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sigma_grpc.auth import store as store_module

    old_token, new_token = (
        register_secret(f"old-{uuid.uuid4().hex}"),
        register_secret(f"new-{uuid.uuid4().hex}"),
    )
    path = tmp_path / "tokens"
    path.write_text(f"bob reader {old_token}\n")
    store = CredentialStore.from_settings(Settings(auth_tokens_file=path))
    assert store is not None
    read = store_module._read
    first_read_done = threading.Event()

    def slow_first_read(p: Path) -> Any:
        credentials = read(p)
        if not first_read_done.is_set():
            first_read_done.set()
            time.sleep(0.5)  # the watcher's read of the old file is slow to land
        return credentials

    monkeypatch.setattr(store_module, "_read", slow_first_read)
    watcher = threading.Thread(target=store.reload)
    watcher.start()
    assert first_read_done.wait(5)
    path.write_text(f"bob reader {new_token}\n")
    store.reload()  # SIGHUP, after the file was revoked-and-replaced
    watcher.join()
    assert store.current.by_token(new_token) is not None
    assert store.current.by_token(old_token) is None


async def test_tokens_in_plaintext_on_a_public_address_are_warned_about(
    tmp_path: Path, database_url: str
) -> None:
    from tests.helpers import start_serve_process

    process, _, lines = start_serve_process(
        {
            "SIGMA_DATABASE_URL": database_url,
            "SIGMA_AUTH_TOKENS_FILE": str(write_tokens_file(tmp_path)),
            "SIGMA_HTTP_ADDR": "0.0.0.0:0",
        }
    )
    try:
        await _logged(lines, "WARNING sigma_grpc.serving: bearer tokens travel in plaintext on 0.0.0.0:0")
    finally:
        process.terminate()
        process.wait(30)


# -- reloading the tokens file --------------------------------------------------------------------------


async def _stats_code(served: Served, token: str) -> grpc.StatusCode:
    try:
        await served.decisions.GetStats(dpb.GetStatsRequest(), metadata=bearer(token))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_changed_tokens_file_is_in_force_without_a_restart(
    guarded: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    new_token = register_secret(f"rotated-{uuid.uuid4().hex}")
    assert await _stats_code(guarded, TOKENS[Role.READER]) == grpc.StatusCode.OK
    # Replaced the way editors and config managers do: a new file renamed over the old.
    staged = tmp_path / "tokens.new"
    staged.write_text(f"dashboard reader {new_token}\n")
    staged.replace(path)
    for _ in range(100):
        if await _stats_code(guarded, new_token) == grpc.StatusCode.OK:
            break
        await asyncio.sleep(0.1)
    assert await _stats_code(guarded, new_token) == grpc.StatusCode.OK
    assert await _stats_code(guarded, TOKENS[Role.READER]) == grpc.StatusCode.UNAUTHENTICATED
    # A broken edit keeps the credentials in force, and says why (naming the line, not the token).
    path.write_text(f"dashboard reader {new_token}\nbroken line\n")
    guarded.server.reload_credentials()  # what SIGHUP does
    assert await _stats_code(guarded, new_token) == grpc.StatusCode.OK
    assert any("line 2: expected NAME ROLE TOKEN" in r.getMessage() for r in caplog.records)


async def _logged(lines: list[str], text: str) -> None:
    for _ in range(100):
        if any(text in line for line in lines):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} is not in the log:\n" + "".join(lines))


async def test_sighup_reloads_the_tokens_file_of_a_running_serve(tmp_path: Path, database_url: str) -> None:
    from tests.helpers import start_serve_process

    path = write_tokens_file(tmp_path)
    process, port, lines = start_serve_process(
        {"SIGMA_DATABASE_URL": database_url, "SIGMA_AUTH_TOKENS_FILE": str(path), "SIGMA_HTTP_ADDR": "off"}
    )
    try:
        await _logged(lines, "authentication on")
        process.send_signal(signals.SIGHUP)
        await _logged(lines, "tokens file reloaded")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stats = await dpb_grpc.DecisionServiceStub(channel).GetStats(
                dpb.GetStatsRequest(), metadata=bearer(TOKENS[Role.READER]), timeout=10
            )
        assert stats.days == 7
        assert process.poll() is None  # SIGHUP's default would have ended the process
    finally:
        process.terminate()
        process.wait(30)


def test_serve_refuses_a_malformed_tokens_file_naming_the_line(tmp_path: Path) -> None:
    path = write_tokens_file(tmp_path, extra=f"ops root {TOKENS[Role.ADMIN]}x\n")
    result = subprocess.run(
        [sys.executable, "-m", "sigma_grpc", "serve"],
        env={"PATH": "/usr/bin:/bin", "SIGMA_AUTH_TOKENS_FILE": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert f"{path} line 7: the second field must be a role" in result.stderr
    scan(watch_output([result.stdout, result.stderr]), "serve's output")


def test_serve_refuses_a_public_address_without_credentials() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sigma_grpc", "serve"],
        env={"PATH": "/usr/bin:/bin", "SIGMA_GRPC_ADDR": "0.0.0.0:0"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "no credentials are configured" in result.stderr and "SIGMA_AUTH=none" in result.stderr


async def test_serving_without_authentication_on_purpose_says_so_loudly(database_url: str) -> None:
    from tests.helpers import start_serve_process

    process, _, lines = start_serve_process(
        {"SIGMA_DATABASE_URL": database_url, "SIGMA_AUTH": "none", "SIGMA_HTTP_ADDR": "off"}
    )
    try:
        await _logged(lines, "WARNING sigma_grpc.serving: AUTHENTICATION IS OFF (SIGMA_AUTH=none)")
    finally:
        process.terminate()
        process.wait(30)


# -- TLS and mutual TLS ------------------------------------------------------------------------------------


async def test_tls_serves_grpc_and_the_gateway_and_refuses_plaintext(
    database_url: str, clean_db: asyncpg.Pool, tmp_path: Path, certificates: Certificates
) -> None:
    files = certificates.server_files()
    settings = tls_settings(files, tmp_path, mutual=False)
    verify = ssl.create_default_context(cafile=str(files["ca"]))
    async with serving(
        database_url, settings, channel_credentials=certificates.grpc_credentials(), http_verify=verify
    ) as served:
        reader = bearer(TOKENS[Role.READER])
        assert (await served.decisions.GetStats(dpb.GetStatsRequest(), metadata=reader)).days == 7
        response = await served.http.get("/v1/stats", headers=dict(reader))
        assert response.status_code == 200
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.server.port}") as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await dpb_grpc.DecisionServiceStub(plaintext).GetStats(
                    dpb.GetStatsRequest(), metadata=reader, timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        async with httpx.AsyncClient(timeout=10) as plain_http:
            with pytest.raises(httpx.HTTPError):
                await plain_http.get(
                    f"http://127.0.0.1:{served.server.http_port}/v1/stats", headers=dict(reader)
                )


async def test_mutual_tls_identifies_hl_decide_by_its_certificate_alone(
    database_url: str, clean_db: asyncpg.Pool, tmp_path: Path, certificates: Certificates
) -> None:
    files = certificates.server_files()
    settings = tls_settings(files, tmp_path, mutual=True)
    hl_decide = certificates.client(CERT_NAME)
    with_cert = ssl.create_default_context(cafile=str(files["ca"]))
    with_cert.load_cert_chain(*hl_decide)
    async with serving(
        database_url,
        settings,
        channel_credentials=certificates.grpc_credentials(hl_decide),
        http_verify=with_cert,
    ) as served:
        # Executor by certificate: past authentication (execution is off), but not admin.
        logged = await served.decisions.LogDecision(signal())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.executions.ExecuteSignal(epb.ExecuteSignalRequest(decision_id=logged.decision.id))
        assert error_reason(caught.value) == "EXECUTION_DISABLED"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.executions.UpdateExecutionConfig(
                epb.UpdateExecutionConfigRequest(
                    config=epb.ExecutionConfig(enabled=True),
                    update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
                )
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"{CERT_IDENTITY} has the role executor" in (caught.value.details() or "")
        # The same certificate through the gateway: the gateway relays it to its own server.
        executed = await served.http.post("/v1/executions", json={"decisionId": logged.decision.id})
        assert executed.status_code == 400 and "EXECUTION_DISABLED" in executed.text
        refused = await served.http.patch(
            "/v1/execution-config", json={"config": {"enabled": True}, "updateMask": "enabled"}
        )
        assert refused.status_code == 403
        # A token still names its holder over mutual TLS (the admin, here).
        admin = bearer(TOKENS[Role.ADMIN])
        config = await served.executions.GetExecutionConfig(epb.GetExecutionConfigRequest(), metadata=admin)
        assert not config.config.enabled

        target = f"127.0.0.1:{served.server.port}"
        stranger = certificates.client("stranger.sigma.internal")
        async with grpc.aio.secure_channel(target, certificates.grpc_credentials(stranger)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await dpb_grpc.DecisionServiceStub(channel).GetStats(dpb.GetStatsRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "stranger.sigma.internal" in (caught.value.details() or "")
        # No certificate, or one from another CA: the handshake fails, nothing is served.
        foreign = certificates.client("hl-decide.sigma.internal", ca=trustme.CA())
        for client in (None, foreign):
            async with grpc.aio.secure_channel(target, certificates.grpc_credentials(client)) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await dpb_grpc.DecisionServiceStub(channel).GetStats(
                        dpb.GetStatsRequest(), metadata=admin, timeout=5
                    )
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The container's health probe, over mutual TLS (and refused without a certificate).
        probe_env = {
            "PATH": "/usr/bin:/bin",
            "SIGMA_GRPC_ADDR": target,
            "SIGMA_TLS_CERT": str(files["tls_cert"]),
            "SIGMA_TLS_KEY": str(files["tls_key"]),
            "SIGMA_TLS_CLIENT_CA": str(files["ca"]),
        }
        probe = [sys.executable, "-m", "sigma_grpc", "healthcheck", "--ca", str(files["ca"])]

        def run(command: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                command, env=probe_env, capture_output=True, text=True, cwd=ROOT, check=False
            )

        healthy = await asyncio.to_thread(
            run, [*probe, "--cert", str(hl_decide[0]), "--key", str(hl_decide[1])]
        )
        assert (healthy.returncode, healthy.stdout.strip()) == (0, "SERVING"), healthy.stderr
        without_certificate = await asyncio.to_thread(run, probe)
        assert without_certificate.returncode == 1 and "UNAVAILABLE" in without_certificate.stdout
        base = f"https://127.0.0.1:{served.server.http_port}"
        verify = ssl.create_default_context(cafile=str(files["ca"]))
        async with httpx.AsyncClient(verify=verify, timeout=10) as without_cert:
            with pytest.raises(httpx.HTTPError):
                await without_cert.get(f"{base}/v1/stats", headers=dict(admin))


def test_a_key_that_does_not_match_its_certificate_refuses_to_start(
    tmp_path: Path, certificates: Certificates
) -> None:
    files = certificates.server_files()
    _, other_key = certificates.client("other.sigma.internal")
    from sigma_grpc.tls import TlsFiles

    with pytest.raises(ConfigError, match="SIGMA_TLS_CERT/SIGMA_TLS_KEY: cannot use"):
        TlsFiles.from_settings(replace(Settings(), tls_cert=files["tls_cert"], tls_key=other_key))


# -- the Python client ---------------------------------------------------------------------------------


async def test_the_python_client_sends_its_token_and_presents_a_certificate(
    database_url: str, clean_db: asyncpg.Pool, tmp_path: Path, certificates: Certificates
) -> None:
    from sigma_client import SigmaClient
    from sigma_client.errors import UnauthenticatedError

    files = certificates.server_files()
    settings = tls_settings(files, tmp_path, mutual=True)
    client_cert = certificates.client("dashboard-box.sigma.internal")
    credentials = certificates.grpc_credentials(client_cert)
    async with serving(database_url, settings, channel_credentials=credentials) as served:
        target = f"127.0.0.1:{served.server.port}"
        async with SigmaClient(target, token=TOKENS[Role.WRITER], credentials=credentials) as client:
            logged = await client.log_decision(
                symbol="BTC",
                direction="long",
                decision_type="signal",
                trader_count=7,
                agreement_pct=0.8,
                effective_k=3.2,
                gates=[{"name": "supermajority", "passed": True, "value": 0.8, "threshold": 0.7}],
            )
            assert logged.decision.id
            assert TOKENS[Role.WRITER] not in repr(client)
        async with SigmaClient(target, credentials=credentials, max_attempts=1) as anonymous:
            with pytest.raises(UnauthenticatedError) as refused:
                await anonymous.get_stats()
        assert refused.value.reason == "NOT_AUTHENTICATED"
    with pytest.raises(ValueError, match="printable ASCII") as bad:
        SigmaClient("127.0.0.1:1", token=f"{TOKENS[Role.READER]}\n")
    assert not leaks([str(bad.value)])
