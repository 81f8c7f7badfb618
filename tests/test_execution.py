"""ExecutionService through gRPC, the real SDK, and the signature-checking fake exchange."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2

from sigma_grpc.app import build_exchange
from sigma_grpc.config import ConfigError, Secret, Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb
from tests.execution_env import (
    AGENT,
    AGENT_KEY,
    MAIN,
    MAIN_KEY,
    Env,
    ExecStub,
    Starter,
    signal_request,
)
from tests.fake_hyperliquid import FakeHyperliquid
from tests.helpers import (
    error_reason,
    expect_error,
    invalid_fields,
    skip,
    start_serve_process,
    ts,
)

# -- the happy path ----------------------------------------------------------------------------------


async def test_a_signal_fills_with_leverage_set_first(env: Env) -> None:
    await env.enable()
    decision_id = await env.signal(price_at_decision="1903.95")
    execution = await env.execute(decision_id)
    # 2 % of 10,000 USD at the mid, rounded down to ETH's 4 size decimals.
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    assert execution.reason == pb.EXECUTION_REASON_UNSPECIFIED
    assert (execution.size, execution.fill_size, execution.fill_price) == (
        "0.10500000",
        "0.10500000",
        "1903.95000000",
    )
    assert execution.side == pb.SIDE_BUY
    assert execution.leverage == 3
    assert execution.cloid == "0x" + uuid.UUID(decision_id).hex
    assert execution.HasField("exchange_order_id")
    assert (execution.network, execution.account_address, execution.dry_run) == ("testnet", MAIN, False)
    # Mid 1903.95 + 1 % = 1922.9895 -> 5 significant figures -> 1923.0.
    assert execution.limit_price == "1923.00000000"
    assert execution.position_pct == pytest.approx(0.019991)
    assert execution.exposure_before == 0
    assert execution.exposure_after == pytest.approx(0.019991)
    assert env.exchange_calls() == ["updateLeverage", "order"]
    order = env.fake.order_requests()[0]
    assert order.signer == MAIN
    assert order.body["expiresAfter"] is not None
    assert order.body["action"]["orders"][0]["t"] == {"limit": {"tif": "Ioc"}}
    assert env.fake.positions(MAIN)["ETH"].szi == Decimal("0.105")
    assert env.fake.leverage(MAIN, "ETH") == 3


async def test_a_short_sells(env: Env) -> None:
    await env.enable()
    execution = await env.execute(await env.signal(direction=dpb.DIRECTION_SHORT))
    assert (execution.status, execution.side) == (pb.EXECUTION_STATUS_FILLED, pb.SIDE_SELL)
    assert execution.limit_price == "1884.90000000"  # 1903.95 - 1 % = 1884.9105 -> 1884.9
    assert env.fake.positions(MAIN)["ETH"].szi == Decimal("-0.105")


async def test_partial_fill(env: Env) -> None:
    await env.enable()
    env.fake.set_liquidity("ETH", "0.05")
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_PARTIALLY_FILLED
    assert (execution.size, execution.fill_size) == ("0.10500000", "0.05000000")
    assert "filled 0.05" in execution.error_message


async def test_leverage_already_set_on_an_open_position_is_not_sent_again(env: Env) -> None:
    env.fake.set_position(MAIN, "ETH", "0.01", "1900")
    env.fake.set_leverage(MAIN, "ETH", 3)
    await env.enable()
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    assert env.exchange_calls() == ["order"]


async def test_leverage_is_capped_by_the_asset_maximum(env: Env) -> None:
    env.fake.add_asset("LOWLEV", 2, 2, "50")
    await env.enable(hl_max_leverage=10)
    execution = await env.execute(await env.signal("LOWLEV"))
    assert (execution.status, execution.leverage) == (pb.EXECUTION_STATUS_FILLED, 2)
    assert env.fake.leverage(MAIN, "LOWLEV") == 2


async def test_a_symbol_listed_after_start_is_found_by_refreshing_meta(env: Env) -> None:
    await env.enable()
    assert (await env.execute(await env.signal())).status == pb.EXECUTION_STATUS_FILLED
    env.fake.add_asset("NEWCOIN", 1, 10, "25")
    execution = await env.execute(await env.signal("NEWCOIN"))
    assert (execution.status, execution.size) == (pb.EXECUTION_STATUS_FILLED, "8.00000000")
    assert len(env.fake.info_requests("meta")) == 2


async def test_nonces_strictly_increase_across_back_to_back_signed_calls(env: Env) -> None:
    await env.enable()
    for symbol in ("ETH", "BTC", "SOL"):
        assert (await env.execute(await env.signal(symbol))).status == pb.EXECUTION_STATUS_FILLED
    nonces = [r.body["nonce"] for r in env.fake.requests if r.path == "/exchange"]
    assert len(nonces) == 6
    assert nonces == sorted(set(nonces))
    assert await env.db.fetchval("SELECT last_nonce FROM signer_nonces WHERE signer = $1", MAIN) == nonces[-1]


# -- one decision, one order ------------------------------------------------------------------------


async def test_executing_again_returns_the_same_execution(env: Env) -> None:
    await env.enable()
    decision_id = await env.signal()
    first = await env.execute(decision_id)
    again = await env.execute(decision_id)
    assert again == first
    assert env.fake.count("order") == 1


async def test_twenty_concurrent_calls_place_one_order(env: Env) -> None:
    await env.enable()
    decision_id = await env.signal()
    results = await asyncio.gather(*(env.execute(decision_id) for _ in range(20)))
    assert {r.id for r in results} == {results[0].id}
    assert {r.status for r in results} == {pb.EXECUTION_STATUS_FILLED}
    assert env.fake.count("order") == 1
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 1


async def test_two_replicas_on_one_database_place_one_order(start: Starter, fake: FakeHyperliquid) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    first, second = await start(), await start()
    await first.enable()
    decision_id = await first.signal()
    results = await asyncio.gather(
        *(replica.execute(decision_id) for _ in range(10) for replica in (first, second))
    )
    assert {r.id for r in results} == {results[0].id}
    assert {r.status for r in results} == {pb.EXECUTION_STATUS_FILLED}
    assert fake.count("order") == 1


async def test_callers_past_their_deadline_get_it_pending_and_the_attempt_goes_on(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(hl_timeout_s=10)
    await env.enable()
    fake.hang(2, apply=True)
    decision_id = await env.signal()
    claimer, follower = await asyncio.gather(env.execute(decision_id, 1.0), env.execute(decision_id, 1.0))
    assert claimer.id == follower.id
    assert {claimer.status, follower.status} == {pb.EXECUTION_STATUS_PENDING}
    for _ in range(100):
        current = await env.get(claimer.id)
        if current.status != pb.EXECUTION_STATUS_PENDING:
            break
        await asyncio.sleep(0.1)
    assert current.status == pb.EXECUTION_STATUS_FILLED
    assert fake.count("order") == 1


async def test_a_rejected_decision_stays_rejected(env: Env) -> None:
    await env.enable()
    env.fake.fail_orders("Insufficient margin to place order. asset={asset}")
    decision_id = await env.signal()
    first = await env.execute(decision_id)
    assert first.status == pb.EXECUTION_STATUS_REJECTED
    assert await env.execute(decision_id) == first
    assert env.fake.count("order") == 1


# -- the pre-trade risk check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrange", "signal_fields", "reason", "message"),
    [
        (None, {"decided_at": "stale"}, pb.EXECUTION_REASON_STALE_SIGNAL, "old (limit 120s)"),
        (None, {"symbol": "NOPE"}, pb.EXECUTION_REASON_UNKNOWN_SYMBOL, "NOPE is not listed"),
        (None, {"price_at_decision": "2000"}, pb.EXECUTION_REASON_PRICE_DRIFT, "drifted"),
        ("empty_account", {}, pb.EXECUTION_REASON_NO_ACCOUNT_VALUE, "account value is"),
        ("big_position", {}, pb.EXECUTION_REASON_EXPOSURE_LIMIT, "exposure after the trade would be 11.0"),
        ("small_account", {}, pb.EXECUTION_REASON_MIN_NOTIONAL, "below the exchange's $10 minimum"),
    ],
    ids=["stale", "unknown symbol", "price drift", "no account value", "exposure", "min notional"],
)
async def test_risk_rejections_sign_nothing(
    start: Starter,
    fake: FakeHyperliquid,
    arrange: str | None,
    signal_fields: dict[str, Any],
    reason: int,
    message: str,
) -> None:
    value = {"empty_account": 0, "small_account": 400}.get(arrange or "", 10_000)
    fake.add_account(key=MAIN_KEY, account_value=value)
    if arrange == "big_position":
        # 0.03 BTC at 30135 = 904.05 USD: 9.04 % exposure, plus 2 % would be 11.04 %.
        fake.set_position(MAIN, "BTC", "0.03", "30135")
    env = await start()
    await env.enable()
    fields = dict(signal_fields)
    if fields.get("decided_at") == "stale":
        fields["decided_at"] = ts(datetime.now(UTC) - timedelta(minutes=10))
    execution = await env.execute(await env.signal(fields.pop("symbol", "ETH"), **fields))
    assert (execution.status, execution.reason) == (pb.EXECUTION_STATUS_REJECTED, reason)
    assert message in execution.error_message
    assert env.exchange_calls() == []  # nothing signed, leverage included
    row = await env.db.fetchrow("SELECT status, reason FROM execution_logs")
    assert row is not None
    assert row["status"] == "rejected"


async def test_exposure_is_checked_after_the_trade_and_never_shrinks_the_order(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    fake.set_position(MAIN, "BTC", "0.03", "30135")
    env = await start()
    await env.enable()
    execution = await env.execute(await env.signal())
    assert (execution.status, execution.reason) == (
        pb.EXECUTION_STATUS_REJECTED,
        pb.EXECUTION_REASON_EXPOSURE_LIMIT,
    )
    assert env.exchange_calls() == []
    assert execution.size == "0.10500000"  # the full 2 %, not what would have fitted
    assert execution.exposure_before == pytest.approx(0.090405)
    assert execution.exposure_after == pytest.approx(0.110396)


async def test_an_exposure_limit_above_ten_x_is_allowed_and_recorded(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=1_000)
    fake.set_position(MAIN, "BTC", "0.3", "30135")  # 9,040.5 USD: 9.04x the account
    env = await start()
    await env.enable(hl_max_exposure_pct=10.0)
    execution = await env.execute(await env.signal())
    # A 20 USD order (0.0105 ETH) on top of 9.04x: stored without overflow.
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    assert execution.exposure_before == pytest.approx(9.0405)
    assert execution.exposure_after == pytest.approx(9.060491)


# -- what the exchange answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "reason", "text"),
    [
        (
            ("fail_orders", "Insufficient margin to place order. asset={asset}"),
            "REJECTED",
            "INSUFFICIENT_MARGIN",
            "Insufficient margin",
        ),
        (
            ("fail_orders", "Order could not immediately match against any resting orders. asset={asset}"),
            "REJECTED",
            "IOC_NO_MATCH",
            "could not immediately match",
        ),
        (
            ("fail_orders", "Order price too far from oracle. asset={asset}"),
            "REJECTED",
            "EXCHANGE_ERROR",
            "too far from oracle",
        ),
        (("reject_requests", "L1 error: something broke"), "FAILED", "EXCHANGE_ERROR", "something broke"),
        (("http_error", 429), "FAILED", "RATE_LIMITED", "HTTP 429"),
        (("http_error", 422), "FAILED", "EXCHANGE_ERROR", "HTTP 422"),
        (("http_error", 502), "UNKNOWN", "EXCHANGE_ERROR", "HTTP 502"),
        (("non_json",), "UNKNOWN", "EXCHANGE_ERROR", "Could not parse JSON"),
        (("rest_ioc",), "UNKNOWN", "EXCHANGE_ERROR", "resting"),
    ],
    ids=["margin", "ioc", "other order error", "top-level err", "429", "4xx", "5xx", "non-json", "resting"],
)
async def test_exchange_answers_are_classified(
    env: Env, fault: tuple[Any, ...], status: str, reason: str, text: str
) -> None:
    await env.enable()
    getattr(env.fake, fault[0])(*fault[1:])
    execution = await env.execute(await env.signal())
    assert pb.ExecutionStatus.Name(execution.status) == f"EXECUTION_STATUS_{status}"
    assert pb.ExecutionReason.Name(execution.reason) == f"EXECUTION_REASON_{reason}"
    assert text in execution.error_message
    assert env.fake.count("order") == 1


async def test_a_failed_leverage_update_sends_no_order(env: Env) -> None:
    await env.enable()
    env.fake.fail_update_leverage("Leverage update rejected")
    execution = await env.execute(await env.signal())
    assert (execution.status, execution.reason) == (
        pb.EXECUTION_STATUS_FAILED,
        pb.EXECUTION_REASON_LEVERAGE_FAILED,
    )
    assert "Leverage update rejected" in execution.error_message
    assert env.exchange_calls() == ["updateLeverage"]


# -- unknown outcomes and reconciliation -------------------------------------------------------------


async def test_a_timeout_is_unknown_then_settled_as_filled_by_cloid(env: Env) -> None:
    await env.enable()
    env.fake.hang(3, apply=True)
    decision_id = await env.signal()
    execution = await env.execute(decision_id)
    assert (execution.status, execution.reason) == (pb.EXECUTION_STATUS_UNKNOWN, pb.EXECUTION_REASON_TIMEOUT)
    # Calling again never sends a second order: it asks the exchange about the first.
    settled = await env.execute(decision_id)
    assert settled.id == execution.id
    assert settled.status == pb.EXECUTION_STATUS_FILLED
    assert (settled.fill_size, settled.fill_price) == ("0.10500000", "1903.95000000")
    assert env.fake.count("order") == 1
    assert await env.get(execution.id) == settled


async def test_a_timeout_never_placed_is_failed_once_the_order_has_expired(env: Env) -> None:
    await env.enable()
    env.fake.hang(3, apply=False)
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    # Before the order's expiry the exchange may still see it: it stays unknown.
    assert (await env.get(execution.id)).status == pb.EXECUTION_STATUS_UNKNOWN
    # Expired by our clock only: the exchange, which applies expiresAfter, may still take it.
    env.clock_offset[0] = timedelta(minutes=2)
    assert (await env.get(execution.id)).status == pb.EXECUTION_STATUS_UNKNOWN
    env.fake.advance_clock(120)  # expired by the exchange's clock too: never placed
    settled = await env.get(execution.id)
    assert (settled.status, settled.reason) == (pb.EXECUTION_STATUS_FAILED, pb.EXECUTION_REASON_NOT_PLACED)
    assert env.fake.positions(MAIN) == {}
    assert env.fake.count("order") == 1


async def test_the_background_reconciler_settles_unknown_executions(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(reconcile_interval_s=1)
    await env.enable()
    fake.hang(2, apply=True)
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    for _ in range(100):
        status = await env.db.fetchval("SELECT status FROM execution_logs WHERE id = $1::uuid", execution.id)
        if status != "unknown":
            break
        await asyncio.sleep(0.1)
    assert status == "filled"


# -- agent wallets ------------------------------------------------------------------------------------


async def test_an_agent_wallet_trades_for_the_main_account(start: Starter, fake: FakeHyperliquid) -> None:
    fake.add_account(MAIN, account_value=10_000)
    fake.add_agent(AGENT, MAIN)
    env = await start(hl_private_key=Secret(AGENT_KEY), hl_account_address=MAIN)
    await env.enable()
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    assert execution.account_address == MAIN
    assert env.fake.order_requests()[0].signer == AGENT
    assert env.fake.positions(MAIN)["ETH"].szi == Decimal("0.105")
    # Balances were read for the main account, never for the agent.
    users = {r.body["user"] for r in fake.info_requests("clearinghouseState")}
    assert users == {MAIN}


async def test_an_agent_key_without_the_main_account_is_refused(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(MAIN, account_value=10_000)
    fake.add_agent(AGENT, MAIN)
    env = await start(hl_private_key=Secret(AGENT_KEY))
    await env.enable()
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "AGENT_WITHOUT_ACCOUNT"
    assert f"SIGMA_HL_ACCOUNT_ADDRESS={MAIN}" in (error.details() or "")
    assert env.exchange_calls() == []
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0


async def test_an_unreachable_exchange_before_the_claim_is_unavailable_and_writes_nothing(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    fake.http_error(502, path="/info", types=None, times=None)
    env = await start()
    await env.enable()
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.UNAVAILABLE)
    assert error_reason(error) == "EXCHANGE_UNAVAILABLE"
    assert "retrying is safe" in (error.details() or "")
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0
    fake.clear_faults()
    assert (await env.execute(await env.signal())).status == pb.EXECUTION_STATUS_FILLED


# -- dry run and paper --------------------------------------------------------------------------------


async def test_dry_run_on_the_paper_account_signs_nothing(start: Starter, fake: FakeHyperliquid) -> None:
    env = await start(hl_private_key=None)
    await env.enable(dry_run=True)
    first_decision = await env.signal()
    first = await env.execute(first_decision)
    assert first.status == pb.EXECUTION_STATUS_SIMULATED
    assert (first.size, first.fill_size, first.fill_price) == ("0.10500000", "0.10500000", "1903.95000000")
    assert (first.dry_run, first.account_address) == (True, "")
    # Paper exposure adds up: the second signal sees the first position...
    second = await env.execute(await env.signal())
    assert second.exposure_before == pytest.approx(0.019991)
    # ...until the first signal's outcome closes it.
    await env.decisions.RecordOutcome(
        dpb.RecordOutcomeRequest(decision_id=first_decision, outcome_pnl="1.5", outcome_r_multiple=0.5)
    )
    third = await env.execute(await env.signal())
    assert third.exposure_before == pytest.approx(0.019991)
    assert env.exchange_calls() == []


async def test_dry_run_only_refuses_a_live_config_and_writes_nothing(env: Env) -> None:
    await env.enable(dry_run=False)
    decision_id = await env.signal()
    paper_only = pb.ExecuteSignalRequest(decision_id=decision_id, dry_run_only=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.executions.ExecuteSignal(paper_only)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "dry run" in (caught.value.details() or "")
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0
    assert env.exchange_calls() == []
    # The same config with dry_run on: a paper execution, nothing signed.
    await env.configure(dry_run=True)
    paper = await env.executions.ExecuteSignal(paper_only)
    assert (paper.execution.status, paper.execution.dry_run) == (pb.EXECUTION_STATUS_SIMULATED, True)
    assert env.exchange_calls() == []


async def test_paper_equity_is_configurable(start: Starter) -> None:
    env = await start(hl_private_key=None, paper_equity=Decimal(50_000))
    await env.enable(dry_run=True)
    execution = await env.execute(await env.signal())
    assert execution.size == "0.52520000"  # 1,000 USD / 1903.95, 4 decimals, rounded down


async def test_dry_run_checks_the_real_account_and_ignores_simulated_positions(env: Env) -> None:
    env.fake.deposit(MAIN, -5_000)
    await env.enable(dry_run=True)
    first = await env.execute(await env.signal())
    assert first.status == pb.EXECUTION_STATUS_SIMULATED
    assert first.size == "0.05250000"  # 2 % of the real 5,000 USD
    assert first.account_address == MAIN
    second = await env.execute(await env.signal())
    assert second.exposure_before == 0  # simulated positions never count on a real account
    assert env.exchange_calls() == []


# -- refusals -------------------------------------------------------------------------------------------


async def test_disabled_execution_reaches_nothing_and_writes_nothing(env: Env) -> None:
    decision_id = await env.signal()
    cases: list[dict[str, Any]] = [{}, {"enabled": True}, {"hl_enabled": True}]
    for values in cases:
        if values:
            await env.configure(enabled=False, hl_enabled=False)
            await env.configure(**values)
        error = await expect_error(env.execute(decision_id), grpc.StatusCode.FAILED_PRECONDITION)
        assert error_reason(error) == "EXECUTION_DISABLED"
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0
    assert env.fake.requests == []


async def test_only_long_or_short_signals_execute(env: Env) -> None:
    await env.enable()
    skipped = (await env.decisions.LogDecision(skip(direction=dpb.DIRECTION_NONE))).decision.id
    error = await expect_error(env.execute(skipped), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "NOT_EXECUTABLE"
    await expect_error(env.execute(str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND)
    assert await invalid_fields(env.execute("not-a-uuid")) == {
        "decision_id": "must be a UUID in its canonical form, such as 0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b"
    }
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0
    assert env.fake.requests == []


async def test_live_execution_without_a_key_says_which_variable_to_set(start: Starter) -> None:
    env = await start(hl_private_key=None)
    await env.enable()
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "NO_SIGNER"
    assert "SIGMA_HL_PRIVATE_KEY" in (error.details() or "")
    assert env.fake.requests == []


def test_a_network_that_disagrees_with_the_url_is_refused(fake: FakeHyperliquid) -> None:
    with pytest.raises(ConfigError, match="mainnet"):
        build_exchange(Settings(hl_network="mainnet", hl_base_url=fake.base_url))
    with pytest.raises(ConfigError, match="SIGMA_HL_NETWORK=mainnet"):
        build_exchange(Settings(hl_network="testnet", hl_base_url="https://api.hyperliquid.xyz"))
    assert build_exchange(Settings(hl_network="mainnet")).base_url == "https://api.hyperliquid.xyz"
    assert build_exchange(Settings()).base_url == "https://api.hyperliquid-testnet.xyz"


# -- config -----------------------------------------------------------------------------------------


async def test_a_new_database_has_conservative_defaults(env: Env) -> None:
    config = (await env.executions.GetExecutionConfig(pb.GetExecutionConfigRequest())).config
    assert (config.enabled, config.hl_enabled, config.dry_run) == (False, False, True)
    assert (config.hl_max_leverage, config.max_signal_age_s) == (3, 120)
    assert (config.hl_max_position_pct, config.hl_max_exposure_pct) == (0.02, 0.1)
    assert (config.hl_slippage_pct, config.max_price_drift_pct) == (0.01, 0.01)


async def test_config_updates_are_masked_and_audited(env: Env) -> None:
    updated = await env.configure(actor="alice", hl_max_leverage=5, hl_max_exposure_pct=0.25, enabled=True)
    assert (updated.hl_max_leverage, updated.hl_max_exposure_pct, updated.enabled) == (5, 0.25, True)
    assert updated.hl_max_position_pct == 0.02  # not in the mask: unchanged
    rows = await env.db.fetch(
        "SELECT note, field, old_value, new_value FROM execution_config_audit ORDER BY field"
    )
    # Authentication is off here; the actor header is a note (test_auth: the authenticated name).
    assert [tuple(r) for r in rows] == [
        ("alice", "enabled", "false", "true"),
        ("alice", "hl_max_exposure_pct", '"0.10000000"', '"0.25000000"'),
        ("alice", "hl_max_leverage", "3", "5"),
    ]
    # Setting a value it already has changes nothing and audits nothing.
    await env.configure(hl_max_leverage=5)
    assert await env.db.fetchval("SELECT count(*) FROM execution_config_audit") == 3
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await env.db.execute("DELETE FROM execution_config_audit")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await env.db.execute("TRUNCATE execution_config_audit")
    with pytest.raises(asyncpg.RaiseError, match="cannot be deleted"):
        await env.db.execute("DELETE FROM execution_config")


@pytest.mark.parametrize(
    ("values", "paths", "violation"),
    [
        ({}, [], ("update_mask", "must name at least one field to change")),
        ({}, ["nope"], ("update_mask", "unknown field 'nope'")),
        ({}, ["updated_at"], ("update_mask", "updated_at is output only")),
        ({"hl_max_leverage": 0}, ["hl_max_leverage"], ("config.hl_max_leverage", "must be in [1, 50]")),
        ({"hl_max_leverage": 51}, ["hl_max_leverage"], ("config.hl_max_leverage", "must be in [1, 50]")),
        (
            {"hl_max_position_pct": 0},
            ["hl_max_position_pct"],
            ("config.hl_max_position_pct", "must be in (0, 1]"),
        ),
        (
            {"hl_max_position_pct": 1.5},
            ["hl_max_position_pct"],
            ("config.hl_max_position_pct", "must be in (0, 1]"),
        ),
        (
            {"hl_max_exposure_pct": 10.5},
            ["hl_max_exposure_pct"],
            ("config.hl_max_exposure_pct", "must be in (0, 10]"),
        ),
        ({"hl_slippage_pct": 0.2}, ["hl_slippage_pct"], ("config.hl_slippage_pct", "must be in (0, 0.1]")),
        (
            {"hl_slippage_pct": float("nan")},
            ["hl_slippage_pct"],
            ("config.hl_slippage_pct", "must be a finite number"),
        ),
        ({"max_signal_age_s": 0}, ["max_signal_age_s"], ("config.max_signal_age_s", "must be in [1, 86400]")),
        (
            {"max_price_drift_pct": 0},
            ["max_price_drift_pct"],
            ("config.max_price_drift_pct", "must be in (0, 1]"),
        ),
    ],
)
async def test_invalid_config_updates_change_nothing(
    env: Env, values: dict[str, Any], paths: list[str], violation: tuple[str, str]
) -> None:
    request = pb.UpdateExecutionConfigRequest(
        config=pb.ExecutionConfig(**values), update_mask=field_mask_pb2.FieldMask(paths=paths)
    )
    assert await invalid_fields(env.executions.UpdateExecutionConfig(request)) == dict([violation])
    assert await env.db.fetchval("SELECT count(*) FROM execution_config_audit") == 0


# -- history -----------------------------------------------------------------------------------------


async def test_list_executions_filters_and_pages(env: Env) -> None:
    await env.enable()
    env.fake.fail_orders("Insufficient margin to place order. asset={asset}")
    ids = [(await env.execute(await env.signal())).id for _ in range(3)]
    rejected = ids[0]
    page = await env.executions.ListExecutions(pb.ListExecutionsRequest(page_size=2))
    assert [e.id for e in page.executions] == ids[::-1][:2]
    rest = await env.executions.ListExecutions(
        pb.ListExecutionsRequest(page_size=2, page_token=page.next_page_token)
    )
    assert [e.id for e in rest.executions] == [ids[0]] and rest.next_page_token == ""
    only = await env.executions.ListExecutions(pb.ListExecutionsRequest(status=pb.EXECUTION_STATUS_REJECTED))
    assert [e.id for e in only.executions] == [rejected]
    decision_id = (await env.get(ids[1])).decision_id
    one = await env.executions.ListExecutions(pb.ListExecutionsRequest(decision_id=decision_id))
    assert [e.id for e in one.executions] == [ids[1]]
    assert await invalid_fields(
        env.executions.ListExecutions(
            pb.ListExecutionsRequest(status=pb.EXECUTION_STATUS_FILLED, page_token=page.next_page_token)
        ),
        "INVALID_PAGE_TOKEN",
    ) == {"page_token": "was issued for other filters: repeat the request's filters exactly"}
    await expect_error(
        env.executions.GetExecution(pb.GetExecutionRequest(id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )


# -- secrets -------------------------------------------------------------------------------------------


async def test_the_private_key_never_appears_in_logs_errors_reprs_or_the_database(
    start: Starter, fake: FakeHyperliquid, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start()
    await env.enable()
    texts: list[str] = []
    fake.http_error(429)
    texts.append((await env.execute(await env.signal())).error_message)
    fake.fail_update_leverage("nope")
    texts.append((await env.execute(await env.signal("BTC"))).error_message)
    texts.append((await env.execute(await env.signal())).error_message)
    for request in (
        pb.ExecuteSignalRequest(decision_id="x"),
        pb.ExecuteSignalRequest(decision_id=str(uuid.uuid4())),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await env.executions.ExecuteSignal(request)
        texts.append(str(caught.value))
    settings = Settings(hl_private_key=Secret(MAIN_KEY))
    texts += [repr(settings), str(settings), repr(settings.hl_private_key), repr(build_exchange(settings))]
    formatter = logging.Formatter()
    texts += [formatter.format(record) for record in caplog.records]  # tracebacks included
    rows = await env.db.fetch("SELECT row_to_json(e)::text AS row FROM execution_logs e")
    texts += [r["row"] for r in rows]
    texts += [str(r) for r in await env.db.fetch("SELECT * FROM signer_nonces")]
    assert len(texts) > 10
    body = MAIN_KEY.removeprefix("0x")
    assert not [t for t in texts if body in t.lower()]


def test_settings_read_the_key_from_a_file_and_refuse_bad_values(tmp_path: Any) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(MAIN_KEY + "\n")
    settings = Settings.from_env({"SIGMA_HL_PRIVATE_KEY_FILE": str(key_file)})
    assert settings.hl_private_key == Secret(MAIN_KEY)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SIGMA_HL_PRIVATE_KEY": MAIN_KEY[:-1] + "z"})
    assert MAIN_KEY[4:20] not in str(caught.value)
    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({"SIGMA_HL_PRIVATE_KEY": MAIN_KEY, "SIGMA_HL_PRIVATE_KEY_FILE": str(key_file)})
    with pytest.raises(ConfigError, match="mainnet or testnet"):
        Settings.from_env({"SIGMA_HL_NETWORK": "devnet"})


# -- findings of the money-path review ----------------------------------------------------------------


async def test_concurrent_signals_cannot_together_break_the_exposure_limit(env: Env) -> None:
    await env.enable(hl_max_exposure_pct=0.03)
    eth, btc = await env.signal("ETH"), await env.signal("BTC")
    results = await asyncio.gather(env.execute(eth), env.execute(btc))
    statuses = sorted(pb.ExecutionStatus.Name(r.status) for r in results)
    assert statuses == ["EXECUTION_STATUS_FILLED", "EXECUTION_STATUS_REJECTED"]
    rejected = next(r for r in results if r.status == pb.EXECUTION_STATUS_REJECTED)
    assert rejected.reason == pb.EXECUTION_REASON_EXPOSURE_LIMIT
    assert rejected.exposure_before == pytest.approx(0.02, abs=0.0002)
    assert env.fake.count("order") == 1


async def test_unknown_orders_count_as_exposure(env: Env) -> None:
    await env.enable(hl_max_exposure_pct=0.03)
    env.fake.hang(3, apply=False)
    first = await env.execute(await env.signal("ETH"))
    assert first.status == pb.EXECUTION_STATUS_UNKNOWN
    second = await env.execute(await env.signal("BTC"))
    assert (second.status, second.reason) == (
        pb.EXECUTION_STATUS_REJECTED,
        pb.EXECUTION_REASON_EXPOSURE_LIMIT,
    )
    assert second.exposure_before == pytest.approx(0.020192)  # 0.105 ETH at the 1923 limit price


async def test_a_sell_near_the_minimum_is_checked_at_its_limit_price(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=505)
    env = await start()
    await env.enable()
    # 0.0053 ETH is 10.09 USD at the mid but 9.99 USD at the 1884.9 limit price.
    execution = await env.execute(await env.signal(direction=dpb.DIRECTION_SHORT))
    assert (execution.status, execution.reason) == (
        pb.EXECUTION_STATUS_REJECTED,
        pb.EXECUTION_REASON_MIN_NOTIONAL,
    )
    assert env.exchange_calls() == []


async def test_a_caller_without_a_deadline_waits_for_the_result(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(hl_timeout_s=10)
    await env.enable()
    fake.hang(1.5, apply=True)
    decision_id = await env.signal()
    request = pb.ExecuteSignalRequest(decision_id=decision_id)
    first, second = await asyncio.gather(
        env.executions.ExecuteSignal(request), env.executions.ExecuteSignal(request)
    )
    assert first.execution.status == second.execution.status == pb.EXECUTION_STATUS_FILLED
    assert fake.count("order") == 1


async def test_an_abandoned_pending_claim_is_settled_after_its_expiry(env: Env) -> None:
    await env.enable()
    decision_id = await env.signal()
    # A replica claimed the decision and died before signing anything.
    await env.db.execute(
        """
        INSERT INTO execution_logs (decision_id, symbol, side, leverage, cloid, network, account_address,
                                    dry_run, order_expires_at)
        VALUES ($1::uuid, 'ETH', 'buy', 3, $2, 'testnet', $3, false, NOW() + interval '30 seconds')
        """,
        decision_id,
        "0x" + uuid.UUID(decision_id).hex,
        MAIN,
    )
    pending = await env.execute(decision_id, timeout=1)
    assert pending.status == pb.EXECUTION_STATUS_PENDING
    env.clock_offset[0] = timedelta(minutes=2)
    env.fake.advance_clock(120)
    settled = await env.execute(decision_id)
    assert (settled.status, settled.reason) == (pb.EXECUTION_STATUS_FAILED, pb.EXECUTION_REASON_NOT_PLACED)
    assert env.exchange_calls() == []


async def test_reconciliation_asks_the_account_the_order_ran_against(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    first = await start()
    await first.enable()
    fake.hang(3, apply=True)
    execution = await first.execute(await first.signal())
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    # Restarted without the key (paper settings): the order is still looked up on MAIN.
    restarted = await start(hl_private_key=None)
    settled = await restarted.get(execution.id)
    assert settled.status == pb.EXECUTION_STATUS_FILLED
    assert {r.body["user"] for r in fake.info_requests("orderStatus")} == {MAIN}


async def test_one_row_that_cannot_be_reconciled_does_not_hold_up_the_others(env: Env) -> None:
    await env.enable()
    env.fake.hang(3, apply=True)
    good = await env.execute(await env.signal())
    other_network = await env.signal()
    await env.db.execute(
        """
        INSERT INTO execution_logs (decision_id, symbol, side, leverage, cloid, network, account_address,
                                    dry_run, order_expires_at, status)
        VALUES ($1::uuid, 'ETH', 'buy', 3, $2, 'mainnet', $3, false, NOW() - interval '1 hour', 'unknown')
        """,
        other_network,
        "0x" + uuid.UUID(other_network).hex,
        MAIN,
    )
    assert await env.server.executor.reconcile_once() == 1
    assert (await env.get(good.id)).status == pb.EXECUTION_STATUS_FILLED
    assert (
        await env.db.fetchval("SELECT status FROM execution_logs WHERE decision_id = $1::uuid", other_network)
        == "unknown"
    )


async def test_a_resting_ioc_is_cancelled_then_settled(env: Env) -> None:
    await env.enable()
    env.fake.rest_ioc()
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    assert env.exchange_calls() == ["updateLeverage", "order", "cancelByCloid"]
    settled = await env.get(execution.id)
    assert (settled.status, settled.reason) == (
        pb.EXECUTION_STATUS_REJECTED,
        pb.EXECUTION_REASON_IOC_NO_MATCH,
    )


async def test_nonces_stay_unique_when_the_clock_stands_still(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    frozen = time.time()
    # The nonce source reads time.time(); with the clock frozen only the "last + 1" rule keeps them apart.
    monkeypatch.setattr(time, "time", lambda: frozen)
    await env.enable()
    decision_ids = [await env.signal(symbol) for symbol in ("ETH", "BTC", "SOL")]
    results = await asyncio.gather(*(env.execute(d) for d in decision_ids))
    assert {r.status for r in results} == {pb.EXECUTION_STATUS_FILLED}
    nonces = sorted(r.body["nonce"] for r in env.fake.requests if r.path == "/exchange")
    first = int(frozen * 1000)
    assert nonces == list(range(first, first + 6))


def test_reconciliation_never_calls_a_fill_a_rejection() -> None:
    from sigma_grpc.domain.execution import settle_from_order_status

    now = datetime.now(UTC)
    later = now + timedelta(minutes=1)

    def order(status: str, orig: str = "0.1", left: str = "0.1") -> dict[str, Any]:
        return {
            "status": "order",
            "order": {"order": {"oid": 7, "origSz": orig, "sz": left}, "status": status},
        }

    size = Decimal("0.1")
    # Filled, but its fills not found (yet): stays unknown rather than REJECTED.
    assert settle_from_order_status(order("filled", left="0"), [], size, now=now, expires_at=later) is None
    assert (
        settle_from_order_status(order("canceled", left="0.04"), [], size, now=now, expires_at=later) is None
    )
    assert settle_from_order_status(order("open"), [], size, now=now, expires_at=later) is None
    partial = settle_from_order_status(
        order("canceled", left="0.04"),
        [(Decimal("100"), Decimal("0.02")), (Decimal("101"), Decimal("0.04"))],
        size,
        now=now,
        expires_at=later,
    )
    assert partial is not None
    assert (partial.status.value, partial.fill_size, partial.fill_price) == (
        "partially_filled",
        Decimal("0.06"),
        Decimal("100.66666667"),
    )
    margin = settle_from_order_status(order("perpMarginRejected"), [], size, now=now, expires_at=later)
    assert margin is not None
    assert (margin.status.value, margin.reason and margin.reason.value) == ("rejected", "insufficient_margin")
    unknown = {"status": "unknownOid"}
    assert settle_from_order_status(unknown, [], size, now=now, expires_at=later) is None
    never = settle_from_order_status(unknown, [], size, now=later + timedelta(seconds=1), expires_at=later)
    assert never is not None
    assert (never.status.value, never.reason and never.reason.value) == ("failed", "not_placed")


async def test_an_unknown_status_filter_is_invalid(env: Env) -> None:
    assert await invalid_fields(env.executions.ListExecutions(pb.ListExecutionsRequest(status=99))) == {  # type: ignore[arg-type]
        "status": "unknown value 99"
    }


async def test_two_replica_processes_on_one_database_place_one_order(
    database_url: str, clean_db: asyncpg.Pool, fake: FakeHyperliquid
) -> None:
    """Two `sigma-grpc serve` processes: the claim and the signer lock live in PostgreSQL, not in memory."""
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    settings = {
        "SIGMA_DATABASE_URL": database_url,
        "SIGMA_HL_BASE_URL": fake.base_url,
        "SIGMA_HL_PRIVATE_KEY": MAIN_KEY,
        "SIGMA_HL_TIMEOUT_S": "2",
    }
    replicas = [start_serve_process(settings) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _, port, _ in replicas]
    try:
        executions = [ExecStub(channel) for channel in channels]
        decisions = decision_service_pb2_grpc.DecisionServiceStub(channels[0])
        await executions[0].UpdateExecutionConfig(
            pb.UpdateExecutionConfigRequest(
                config=pb.ExecutionConfig(enabled=True, hl_enabled=True, dry_run=False),
                update_mask=field_mask_pb2.FieldMask(paths=["enabled", "hl_enabled", "dry_run"]),
            )
        )
        ids = [(await decisions.LogDecision(signal_request(symbol))).decision.id for symbol in ("ETH", "BTC")]
        calls = [
            stub.ExecuteSignal(pb.ExecuteSignalRequest(decision_id=decision_id), timeout=30)
            for decision_id in ids
            for stub in executions
            for _ in range(5)
        ]
        results = [r.execution for r in await asyncio.gather(*calls)]
        assert {r.status for r in results} == {pb.EXECUTION_STATUS_FILLED}
        assert len({r.id for r in results}) == 2
        assert fake.count("order") == 2
        nonces = [r.body["nonce"] for r in fake.requests if r.path == "/exchange"]
        assert len(set(nonces)) == len(nonces) == 4
    finally:
        for channel in channels:
            await channel.close()
        for process, _, log_lines in replicas:
            process.terminate()
            process.wait(timeout=30)
            log = "".join(log_lines)
            print(log)  # shown by pytest when the test fails
            assert "ERROR" not in log


async def test_executions_of_several_decisions_in_one_call(env: Env) -> None:
    await env.enable(dry_run=True)
    decision_ids = [await env.signal(symbol) for symbol in ("ETH", "BTC", "SOL")]
    executions = [await env.execute(d) for d in decision_ids]
    request = pb.ListExecutionsRequest(decision_ids=decision_ids[:2])
    listed = await env.executions.ListExecutions(request)
    assert {e.id for e in listed.executions} == {e.id for e in executions[:2]}
    # decision_id adds to them; paging keeps the filter.
    both = pb.ListExecutionsRequest(decision_id=decision_ids[2], decision_ids=decision_ids[:1], page_size=1)
    first = await env.executions.ListExecutions(both)
    rest = await env.executions.ListExecutions(
        pb.ListExecutionsRequest(
            decision_id=decision_ids[2], decision_ids=decision_ids[:1], page_token=first.next_page_token
        )
    )
    assert {e.id for e in [*first.executions, *rest.executions]} == {executions[0].id, executions[2].id}
    one_bad = pb.ListExecutionsRequest(decision_ids=[decision_ids[0], "nope"])
    assert list(await invalid_fields(env.executions.ListExecutions(one_bad))) == ["decision_ids[1]"]
    too_many = pb.ListExecutionsRequest(decision_ids=[decision_ids[0]] * 201)
    assert list(await invalid_fields(env.executions.ListExecutions(too_many))) == ["decision_ids"]
