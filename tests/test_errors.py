"""The error contract: sigma.v1.ErrorReason, its codes, the RPC comments, and every reason met for real.

Each reason is produced here through the gRPC API by the request that causes
it, so a reason that no code path can reach (or that leaves with the wrong
code) fails a test; a reason added to the domain without a code fails at import
of api/errors.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from sigma_grpc.api.errors import REASON_CODES, to_status
from sigma_grpc.app import start_server
from sigma_grpc.auth.policy import Role
from sigma_grpc.config import Secret, Settings
from sigma_grpc.domain.errors import Reason
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc, errors_pb2
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb
from sigma_grpc.storage.pool import create_pool
from tests.auth_env import TOKENS, call_metadata
from tests.execution_env import AGENT, AGENT_KEY, MAIN, MAIN_KEY, Env, Starter
from tests.fake_hyperliquid import FakeHyperliquid
from tests.helpers import Stub, error_reason, field_violations, signal, skip

PROTOS = Path(__file__).resolve().parent.parent / "protos" / "sigma" / "v1"
PREFIX = "ERROR_REASON_"


def test_the_domain_reasons_are_the_contracts() -> None:
    names = errors_pb2.ErrorReason.keys()
    in_contract = {name.removeprefix(PREFIX) for name in names} - {"UNSPECIFIED"}
    assert {reason.value for reason in Reason} == in_contract
    assert all(reason.name == reason.value for reason in Reason)


def test_every_reason_has_one_code() -> None:
    assert set(REASON_CODES) == set(Reason)


def _documented_errors() -> dict[str, list[tuple[str, str]]]:
    """{rpc name: [(code, reason), ...]} as each RPC's comment lists them ("- CODE (REASON): ...")."""
    documented: dict[str, list[tuple[str, str]]] = {}
    for proto in sorted(PROTOS.glob("*_service.proto")):
        comment: list[str] = []
        for line in proto.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("//"):
                comment.append(stripped.removeprefix("//").strip())
                continue
            match = re.match(r"rpc (\w+)\(", stripped)
            if match:
                text = " ".join(comment)
                assert "Errors:" in text, f"{match.group(1)} does not list its errors"
                documented[match.group(1)] = re.findall(r"- ([A-Z_]+) \(([A-Z_]+)\)", text)
            comment = []
    return documented


def test_every_rpc_lists_its_errors_with_codes_that_match() -> None:
    documented = _documented_errors()
    assert set(documented) == {
        "LogDecision",
        "LogDecisions",
        "GetDecision",
        "ListDecisions",
        "GetStats",
        "GetSignalQuality",
        "GetGateAnalytics",
        "RecordOutcome",
        "ExecuteSignal",
        "GetExecution",
        "ListExecutions",
        "GetExecutionConfig",
        "UpdateExecutionConfig",
    }
    listed = set()
    for rpc, errors in documented.items():
        assert errors, rpc
        # Every RPC reads or writes the database, so each can meet DATABASE_UNAVAILABLE.
        assert ("UNAVAILABLE", "DATABASE_UNAVAILABLE") in errors, rpc
        for code, reason in errors:
            assert REASON_CODES[Reason(reason)].name == code, (rpc, code, reason)
            listed.add(Reason(reason))
    assert listed == set(Reason)


# -- every reason, caused through the API ------------------------------------------------------------


@dataclass
class Ctx:
    """What a trigger may use: a running service on the fake exchange, and ways to start others."""

    env: Env
    start: Starter
    fake: FakeHyperliquid
    database_url: str


Trigger = Callable[[Ctx], Awaitable[object]]


async def _validation_failed(ctx: Ctx) -> object:
    env = ctx.env
    return await env.decisions.LogDecision(signal(agreement_pct=1.5))


async def _invalid_page_token(ctx: Ctx) -> object:
    env = ctx.env
    return await env.decisions.ListDecisions(dpb.ListDecisionsRequest(page_token="not-a-token"))


async def _request_id_reused(ctx: Ctx) -> object:
    env = ctx.env
    await env.decisions.LogDecision(signal(request_id="once"))
    return await env.decisions.LogDecision(signal(request_id="once", trader_count=99))


async def _decision_not_found(ctx: Ctx) -> object:
    env = ctx.env
    return await env.decisions.GetDecision(dpb.GetDecisionRequest(id=str(uuid.uuid4())))


async def _execution_not_found(ctx: Ctx) -> object:
    env = ctx.env
    return await env.executions.GetExecution(pb.GetExecutionRequest(id=str(uuid.uuid4())))


async def _not_a_signal(ctx: Ctx) -> object:
    env = ctx.env
    skipped = (await env.decisions.LogDecision(skip())).decision.id
    request = dpb.RecordOutcomeRequest(decision_id=skipped, outcome_pnl="1", outcome_r_multiple=0.1)
    return await env.decisions.RecordOutcome(request)


async def _outcome_already_recorded(ctx: Ctx) -> object:
    env = ctx.env
    decision_id = await env.signal()
    first = dpb.RecordOutcomeRequest(decision_id=decision_id, outcome_pnl="1", outcome_r_multiple=0.1)
    await env.decisions.RecordOutcome(first)
    second = dpb.RecordOutcomeRequest(decision_id=decision_id, outcome_pnl="2", outcome_r_multiple=0.2)
    return await env.decisions.RecordOutcome(second)


async def _not_executable(ctx: Ctx) -> object:
    env = ctx.env
    await env.enable()
    return await env.execute((await env.decisions.LogDecision(skip())).decision.id)


async def _execution_disabled(ctx: Ctx) -> object:
    env = ctx.env
    return await env.execute(await env.signal())


async def _no_signer(ctx: Ctx) -> object:
    keyless = await ctx.start(hl_private_key=None)
    await keyless.enable(dry_run=False)
    return await keyless.execute(await keyless.signal())


async def _dry_run_required(ctx: Ctx) -> object:
    env = ctx.env
    await env.enable(dry_run=False)
    request = pb.ExecuteSignalRequest(decision_id=await env.signal(), dry_run_only=True)
    return await env.executions.ExecuteSignal(request)


async def _agent_without_account(ctx: Ctx) -> object:
    ctx.fake.add_agent(AGENT, MAIN)
    agent = await ctx.start(hl_private_key=Secret(AGENT_KEY))
    await agent.enable()
    return await agent.execute(await agent.signal())


async def _signer_account_mismatch(ctx: Ctx) -> object:
    # MAIN's own key, configured to trade for AGENT's address: not its account.
    mismatched = await ctx.start(hl_private_key=Secret(MAIN_KEY), hl_account_address=AGENT)
    await mismatched.enable()
    return await mismatched.execute(await mismatched.signal())


async def _exchange_unavailable(ctx: Ctx) -> object:
    env = ctx.env
    ctx.fake.http_error(502, path="/info", types=None, times=None)
    await env.enable()
    return await env.execute(await env.signal())


async def _database_unavailable(ctx: Ctx) -> object:
    # A server whose only pooled connection is taken answers before the call's deadline.
    pool = await create_pool(ctx.database_url, min_size=1, max_size=1)
    server = await start_server(pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600))
    try:
        async with pool.acquire(), grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub: Stub = decision_service_pb2_grpc.DecisionServiceStub(channel)
            return await stub.GetStats(dpb.GetStatsRequest(), timeout=1)
    finally:
        await server.stop(grace=1)
        await pool.close()


async def _not_authenticated(ctx: Ctx) -> object:
    guarded = await ctx.start(auth_tokens=Secret(f"alice admin {TOKENS[Role.ADMIN]}"))
    return await guarded.decisions.GetStats(dpb.GetStatsRequest())


async def _role_not_allowed(ctx: Ctx) -> object:
    guarded = await ctx.start(auth_tokens=Secret(f"dashboard reader {TOKENS[Role.READER]}"))
    return await guarded.decisions.LogDecision(signal(), metadata=call_metadata(Role.READER))


TRIGGERS: dict[Reason, Trigger] = {
    Reason.VALIDATION_FAILED: _validation_failed,
    Reason.INVALID_PAGE_TOKEN: _invalid_page_token,
    Reason.REQUEST_ID_REUSED: _request_id_reused,
    Reason.DECISION_NOT_FOUND: _decision_not_found,
    Reason.EXECUTION_NOT_FOUND: _execution_not_found,
    Reason.NOT_A_SIGNAL: _not_a_signal,
    Reason.OUTCOME_ALREADY_RECORDED: _outcome_already_recorded,
    Reason.NOT_EXECUTABLE: _not_executable,
    Reason.EXECUTION_DISABLED: _execution_disabled,
    Reason.NO_SIGNER: _no_signer,
    Reason.DRY_RUN_REQUIRED: _dry_run_required,
    Reason.AGENT_WITHOUT_ACCOUNT: _agent_without_account,
    Reason.SIGNER_ACCOUNT_MISMATCH: _signer_account_mismatch,
    Reason.EXCHANGE_UNAVAILABLE: _exchange_unavailable,
    Reason.DATABASE_UNAVAILABLE: _database_unavailable,
    Reason.NOT_AUTHENTICATED: _not_authenticated,
    Reason.ROLE_NOT_ALLOWED: _role_not_allowed,
}


@pytest.fixture
async def main_env(start: Starter, fake: FakeHyperliquid) -> Env:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    return await start()


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
async def test_every_reason_is_reached_through_the_api_with_its_code(
    reason: Reason,
    main_env: Env,
    start: Starter,
    fake: FakeHyperliquid,
    database_url: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await TRIGGERS[reason](Ctx(main_env, start, fake, database_url))
    assert caught.value.code() == REASON_CODES[reason], caught.value.details()
    assert error_reason(caught.value) == reason.value
    if REASON_CODES[reason] == grpc.StatusCode.INVALID_ARGUMENT:
        assert field_violations(caught.value)


# -- huge and odd numbers are the client's mistake, never INTERNAL -----------------------------------

HUGE = [1e300, -1e300, 1.7976931348623157e308, float("inf"), float("nan")]
CONFIG_DOUBLES = ["hl_max_position_pct", "hl_max_exposure_pct", "hl_slippage_pct", "max_price_drift_pct"]


@pytest.mark.parametrize("value", HUGE, ids=[repr(v) for v in HUGE])
async def test_huge_config_values_are_invalid_and_change_nothing(main_env: Env, value: float) -> None:
    before = await main_env.executions.GetExecutionConfig(pb.GetExecutionConfigRequest())
    for name in CONFIG_DOUBLES:
        request = pb.UpdateExecutionConfigRequest(
            config=pb.ExecutionConfig(**{name: value}),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=[name]),
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await main_env.executions.UpdateExecutionConfig(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, caught.value.details())
        assert list(field_violations(caught.value)) == [f"config.{name}"]
    assert await main_env.executions.GetExecutionConfig(pb.GetExecutionConfigRequest()) == before
    assert await main_env.db.fetchval("SELECT count(*) FROM execution_config_audit") == 0


@pytest.mark.parametrize("value", HUGE, ids=[repr(v) for v in HUGE])
async def test_huge_numbers_in_decision_requests_are_invalid(main_env: Env, value: float) -> None:
    """Every double of every DecisionService request, one at a time: INVALID_ARGUMENT naming it."""
    api = main_env.decisions
    decision_id = await main_env.signal()
    requests: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("agreement_pct", lambda: api.LogDecision(signal(agreement_pct=value))),
        ("effective_k", lambda: api.LogDecision(signal(effective_k=value))),
        ("avg_confidence", lambda: api.LogDecision(signal(avg_confidence=value))),
        ("ev_estimate", lambda: api.LogDecision(signal(ev_estimate=value))),
        (
            "gates[0].value",
            lambda: api.LogDecision(signal(gates=[dpb.Gate(name="g", passed=True, value=value)])),
        ),
        (
            "gates[0].threshold",
            lambda: api.LogDecision(signal(gates=[dpb.Gate(name="g", passed=True, threshold=value)])),
        ),
        (
            "risk_checks[0].value",
            lambda: api.LogDecision(signal(risk_checks=[dpb.RiskCheck(name="r", passed=True, value=value)])),
        ),
        (
            "risk_checks[0].limit",
            lambda: api.LogDecision(signal(risk_checks=[dpb.RiskCheck(name="r", passed=True, limit=value)])),
        ),
        (
            "outcome_r_multiple",
            lambda: api.RecordOutcome(
                dpb.RecordOutcomeRequest(decision_id=decision_id, outcome_pnl="1", outcome_r_multiple=value)
            ),
        ),
    ]
    for field, call in requests:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, caught.value.details())
        assert field in field_violations(caught.value), field
    assert await main_env.db.fetchval("SELECT count(*) FROM decision_logs") == 1
    assert await main_env.db.fetchval("SELECT count(*) FROM decision_logs WHERE outcome_pnl IS NOT NULL") == 0


async def test_huge_integers_are_invalid_or_clamped(main_env: Env) -> None:
    api = main_env.decisions
    too_big = dpb.GetStatsRequest(days=2**31 - 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.GetStats(too_big)
    assert list(field_violations(caught.value)) == ["days"]
    page = await api.ListDecisions(dpb.ListDecisionsRequest(page_size=2**31 - 1))
    assert len(page.decisions) == 0
    request = pb.UpdateExecutionConfigRequest(
        config=pb.ExecutionConfig(hl_max_leverage=2**31 - 1, max_signal_age_s=-(2**31)),
        update_mask=field_mask_pb2.FieldMask(paths=["hl_max_leverage", "max_signal_age_s"]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await main_env.executions.UpdateExecutionConfig(request)
    assert list(field_violations(caught.value)) == ["config.hl_max_leverage", "config.max_signal_age_s"]
    decided = dpb.LogDecisionRequest()
    decided.CopyFrom(signal())
    decided.decided_at.FromDatetime(datetime(9999, 12, 31, tzinfo=UTC))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.LogDecision(decided)
    assert list(field_violations(caught.value)) == ["decided_at"]
    assert await main_env.db.fetchval("SELECT count(*) FROM decision_logs") == 0


async def test_an_undecodable_request_is_invalid_argument_with_a_reason(channel: grpc.aio.Channel) -> None:
    """Bytes that are no protobuf message (or a string field that is no UTF-8) never reach a handler."""
    # No serializers: the payloads go out as the raw bytes given.
    log_decision: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/sigma.v1.DecisionService/LogDecision"
    )
    get_execution: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/sigma.v1.ExecutionService/GetExecution"
    )
    bad_utf8_symbol = b"\x0a\x02\xff\xfe"  # field 1 (symbol), 2 bytes that are not UTF-8
    for call, payload in [
        (log_decision, bad_utf8_symbol),
        (log_decision, b"\xff\xff\xff\xff"),
        (log_decision, b"\x0a\x10abc"),  # a length past the end
        (get_execution, b"\x0a\x01\x80"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(payload, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert error_reason(caught.value) == "VALIDATION_FAILED"
        (description,) = field_violations(caught.value).values()
        assert description.startswith("is not a valid sigma.v1."), description


def test_an_error_of_any_size_fits_the_metadata_clients_accept() -> None:
    # Clients refuse trailing metadata beyond 8 KiB (sometimes) and 16 KiB (always).
    from sigma_grpc.domain.errors import FieldViolation, InvalidArgument

    echo = "ü€" * 5000  # non-ASCII: three bytes on the wire for each byte of UTF-8
    violations = [FieldViolation(f"gates[{i}].name", f"is not allowed: {echo}") for i in range(500)]
    status = to_status(InvalidArgument(violations))
    sizes = {key: len(value) for key, value in status.trailing_metadata}
    encoded = sum(3 if not (0x20 <= b <= 0x7E) or b == 0x25 else 1 for b in status.details.encode())
    assert encoded <= 1024
    assert sizes["grpc-status-details-bin"] <= 3072
    details = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    assert "500 violations" in details.message
    bad = error_details_pb2.BadRequest()
    assert details.details[1].Unpack(bad)
    assert 0 < len(bad.field_violations) < 500
    assert bad.field_violations[0].field == "gates[0].name"
