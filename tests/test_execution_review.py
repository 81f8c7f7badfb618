"""The second money-path review's findings, each reproduced against the fake exchange and the real SDK.

Every test here failed on the code before its fix (the commit that fixed it says so).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc
import pytest
from eth_account import Account

from sigma_grpc.config import ConfigError, Secret, Settings
from sigma_grpc.domain.execution import settle_from_order_status
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as pb
from sigma_grpc.storage.executions import lock_key
from tests.execution_env import AGENT, AGENT_KEY, MAIN, MAIN_KEY, Env, Starter
from tests.fake_hyperliquid import FakeHyperliquid
from tests.helpers import error_reason, expect_error, ts
from tests.secret_scan import register_secret

# Test-only keys, never funded anywhere.
OTHER_KEY = register_secret("0x" + "5d" * 32)
OTHER = Account.from_key(OTHER_KEY).address.lower()
AGENT2_KEY = register_secret("0x" + "b8" * 32)
AGENT2 = Account.from_key(AGENT2_KEY).address.lower()


def outcome(execution: pb.Execution) -> tuple[str, str]:
    """Status and reason by name (names, so a test run on older code shows what it did instead)."""
    return (
        pb.ExecutionStatus.Name(execution.status).removeprefix("EXECUTION_STATUS_"),
        pb.ExecutionReason.Name(execution.reason).removeprefix("EXECUTION_REASON_"),
    )


async def remove_execution_rows(env: Env) -> None:
    """What someone with superuser rights can still do: bypass the triggers and delete every execution."""
    async with env.db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("DELETE FROM execution_events")
        await conn.execute("DELETE FROM execution_logs")


# -- 1. the configured account is checked against the signer's role -----------------------------------


async def test_a_key_of_one_account_configured_for_another_is_refused(
    start: Starter,
    fake: FakeHyperliquid,
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    fake.add_account(key=OTHER_KEY, account_value=1_000_000)
    env = await start(hl_private_key=Secret(MAIN_KEY), hl_account_address=OTHER)
    await env.enable()
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "SIGNER_ACCOUNT_MISMATCH"
    details = error.details() or ""
    assert MAIN in details and OTHER in details
    assert env.exchange_calls() == []
    assert fake.info_requests("clearinghouseState") == []  # nothing sized on the wrong account
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 0


async def test_an_agent_configured_for_an_account_it_does_not_serve_is_refused(
    start: Starter,
    fake: FakeHyperliquid,
) -> None:
    fake.add_account(MAIN, account_value=10_000)
    fake.add_account(key=OTHER_KEY, account_value=10_000)
    fake.add_agent(AGENT, MAIN)
    env = await start(hl_private_key=Secret(AGENT_KEY), hl_account_address=OTHER)
    await env.enable()
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "SIGNER_ACCOUNT_MISMATCH"
    assert AGENT in (error.details() or "") and OTHER in (error.details() or "")
    assert env.exchange_calls() == []


@pytest.mark.parametrize("role", ["vault", "subAccount", "missing"])
async def test_a_key_whose_address_is_a_vault_a_sub_account_or_unknown_is_refused(
    start: Starter, fake: FakeHyperliquid, role: str
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    if role == "vault":
        fake.add_vault(OTHER, account_value=10_000)
    elif role == "subAccount":
        fake.add_sub_account(OTHER, MAIN, account_value=10_000)
    env = await start(hl_private_key=Secret(OTHER_KEY))
    await env.enable()
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "SIGNER_ACCOUNT_MISMATCH"
    described = {"vault": "a vault", "subAccount": "a sub-account", "missing": "unknown to the exchange"}
    assert f"{OTHER} is {described[role]}" in (error.details() or "")
    assert env.exchange_calls() == []


async def test_the_signer_role_is_asked_once(start: Starter, fake: FakeHyperliquid) -> None:
    fake.add_account(MAIN, account_value=10_000)
    fake.add_agent(AGENT, MAIN)
    env = await start(hl_private_key=Secret(AGENT_KEY), hl_account_address=MAIN)
    await env.enable()
    for symbol in ("ETH", "BTC"):
        assert (await env.execute(await env.signal(symbol))).status == pb.EXECUTION_STATUS_FILLED
    assert len(fake.info_requests("userRole")) == 1


async def test_a_dry_run_on_a_real_account_needs_no_key_and_no_role(
    start: Starter,
    fake: FakeHyperliquid,
) -> None:
    fake.add_account(MAIN, account_value=10_000)
    env = await start(hl_private_key=None, hl_account_address=MAIN)
    await env.enable(dry_run=True)
    execution = await env.execute(await env.signal())
    assert (execution.status, execution.account_address) == (pb.EXECUTION_STATUS_SIMULATED, MAIN)
    assert fake.info_requests("userRole") == []


# -- 2. exposure is serialised per account, not per signer ----------------------------------------------


async def test_two_agent_wallets_of_one_account_cannot_together_break_the_exposure_limit(
    start: Starter,
    fake: FakeHyperliquid,
) -> None:
    fake.add_account(MAIN, account_value=10_000)
    fake.add_agent(AGENT, MAIN)
    fake.add_agent(AGENT2, MAIN)
    first = await start(hl_private_key=Secret(AGENT_KEY), hl_account_address=MAIN)
    second = await start(hl_private_key=Secret(AGENT2_KEY), hl_account_address=MAIN)
    await first.enable(hl_max_exposure_pct=0.03)
    eth, btc = await first.signal("ETH"), await first.signal("BTC")
    # Both orders are slow to answer, so without a per-account lock both risk checks run first.
    fake.hang(0.5, apply=True, times=2)
    results = await asyncio.gather(first.execute(eth), second.execute(btc))
    assert sorted(pb.ExecutionStatus.Name(r.status) for r in results) == [
        "EXECUTION_STATUS_FILLED",
        "EXECUTION_STATUS_REJECTED",
    ]
    assert fake.count("order") == 1
    assert fake.account_value(MAIN) > 0
    exposure = sum(abs(p.szi) * fake.mid(coin) for coin, p in fake.positions(MAIN).items())
    assert exposure / fake.account_value(MAIN) <= Decimal("0.03")


# -- 3. the kill switch and the signal's age are read again inside the lock ------------------------------


async def test_disabling_execution_while_an_execution_waits_for_the_lock_signs_nothing(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(hl_timeout_s=5)
    await env.enable()
    fake.hang(1.5, apply=True)  # the first order holds the account's lock for 1.5 s
    first = asyncio.ensure_future(env.execute(await env.signal("ETH")))
    await asyncio.sleep(0.5)
    second = asyncio.ensure_future(env.execute(await env.signal("BTC")))
    await asyncio.sleep(0.2)
    await env.configure(enabled=False)  # the kill switch, while the second waits
    assert (await first).status == pb.EXECUTION_STATUS_FILLED
    waited = await second
    assert outcome(waited) == ("REJECTED", "DISABLED")
    assert fake.count("order") == 1


async def test_a_signal_that_goes_stale_while_waiting_for_the_lock_is_not_signed(
    start: Starter, fake: FakeHyperliquid
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(hl_timeout_s=5)
    await env.enable(max_signal_age_s=2)
    env.fake.hang(2.5, apply=True)
    first = asyncio.ensure_future(env.execute(await env.signal("ETH")))
    await asyncio.sleep(0.3)
    waited = await env.execute(await env.signal("BTC"))
    assert outcome(waited) == ("REJECTED", "STALE_SIGNAL")
    assert (await first).status == pb.EXECUTION_STATUS_FILLED
    assert env.fake.count("order") == 1


# -- 4. an order in flight counts as exposure ---------------------------------------------------------------


async def test_an_order_in_flight_on_another_replica_counts_as_exposure(env: Env) -> None:
    await env.enable(hl_max_exposure_pct=0.03)
    # Another replica has signed a 0.105 ETH order and not yet recorded its result.
    in_flight = await env.signal("ETH")
    await env.db.execute(
        """
        INSERT INTO execution_logs (decision_id, symbol, side, size, leverage, cloid, network,
                                    account_address,
                                    dry_run, order_expires_at, mid_price, limit_price)
        VALUES ($1::uuid, 'ETH', 'buy', 0.105, 3, $2, 'testnet', $3, false, NOW() + interval '30 seconds',
                1903.95, 1923)
        """,
        in_flight,
        "0x" + uuid.UUID(in_flight).hex,
        MAIN,
    )
    second = await env.execute(await env.signal("BTC"))
    assert outcome(second) == ("REJECTED", "EXPOSURE_LIMIT")
    assert second.exposure_before == pytest.approx(0.020192)


# -- 5. reconciliation reaches every row it can settle, and exposure is per network and account ----------


async def test_rows_that_cannot_settle_here_do_not_starve_the_others(env: Env) -> None:
    await env.enable()
    decision_ids = [await env.signal() for _ in range(150)]
    rows = []
    for i, decision_id in enumerate(decision_ids):
        cloid = "0x" + uuid.UUID(decision_id).hex
        if i < 100:  # another network: not this service's to settle
            rows.append((decision_id, cloid, "mainnet", MAIN, False, "unknown", -3600 + i))
        elif i < 120:  # this network, but the exchange may still see the order: stays unknown
            rows.append((decision_id, cloid, "testnet", MAIN, False, "unknown", 3600 + i))
        else:  # abandoned simulations, long expired (but after the others): settle at once
            rows.append((decision_id, cloid, "testnet", None, True, "pending", -1800 + i))
    await env.db.executemany(
        """
        INSERT INTO execution_logs (decision_id, symbol, side, leverage, cloid, network, account_address,
                                    dry_run, status, order_expires_at)
        VALUES ($1::uuid, 'ETH', 'buy', 3, $2, $3, $4, $5, $6, NOW() + make_interval(secs => $7))
        """,
        rows,
    )
    assert await env.server.executor.reconcile_once() == 30
    statuses = await env.db.fetch("SELECT status, count(*) FROM execution_logs GROUP BY status ORDER BY 1")
    assert {r["status"]: r["count"] for r in statuses} == {"failed": 30, "unknown": 120}


async def test_unknown_orders_of_another_network_do_not_count_as_exposure_here(env: Env) -> None:
    await env.enable(hl_max_exposure_pct=0.03)
    elsewhere = await env.signal("ETH")
    await env.db.execute(
        """
        INSERT INTO execution_logs (decision_id, symbol, side, size, leverage, cloid, network,
                                    account_address,
                                    dry_run, status, order_expires_at, limit_price)
        VALUES ($1::uuid, 'ETH', 'buy', 10, 3, $2, 'mainnet', $3, false, 'unknown', NOW(), 1923)
        """,
        elsewhere,
        "0x" + uuid.UUID(elsewhere).hex,
        MAIN,
    )
    execution = await env.execute(await env.signal("BTC"))
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    assert execution.exposure_before == 0


# -- 6. fills are trusted only when they add up to what the order says it filled ---------------------------


def test_incomplete_fills_of_a_filled_order_leave_it_unsettled() -> None:
    now = datetime.now(UTC)
    filled = {
        "status": "order",
        "order": {"order": {"oid": 7, "origSz": "0.1", "sz": "0"}, "status": "filled"},
    }
    half = [(Decimal("100"), Decimal("0.05"))]
    assert settle_from_order_status(filled, half, Decimal("0.1"), now=now, expires_at=now) is None
    whole = [(Decimal("100"), Decimal("0.05")), (Decimal("101"), Decimal("0.05"))]
    settled = settle_from_order_status(filled, whole, Decimal("0.1"), now=now, expires_at=now)
    assert settled is not None
    assert (settled.status.value, settled.fill_size) == ("filled", Decimal("0.1"))
    # An IOC that filled 0.06 of 0.1 and cancelled the rest settles once fills show 0.06.
    partial = {
        "status": "order",
        "order": {"order": {"oid": 7, "origSz": "0.1", "sz": "0.04"}, "status": "canceled"},
    }
    assert settle_from_order_status(partial, half, Decimal("0.1"), now=now, expires_at=now) is None
    sixty = [(Decimal("100"), Decimal("0.06"))]
    settled = settle_from_order_status(partial, sixty, Decimal("0.1"), now=now, expires_at=now)
    assert settled is not None
    assert (settled.status.value, settled.fill_size) == ("partially_filled", Decimal("0.06"))


# -- 7. every state change stays on record ------------------------------------------------------------------


async def test_settling_an_unknown_execution_keeps_its_history(env: Env) -> None:
    await env.enable()
    env.fake.hang(3, apply=True)
    execution = await env.execute(await env.signal())
    assert outcome(execution) == ("UNKNOWN", "TIMEOUT")
    response = await env.executions.GetExecution(pb.GetExecutionRequest(id=execution.id))
    assert response.execution.status == pb.EXECUTION_STATUS_FILLED
    steps = [(e.from_status, e.to_status, e.reason) for e in response.events]
    assert steps == [
        (pb.EXECUTION_STATUS_UNSPECIFIED, pb.EXECUTION_STATUS_PENDING, pb.EXECUTION_REASON_UNSPECIFIED),
        (pb.EXECUTION_STATUS_PENDING, pb.EXECUTION_STATUS_PENDING, pb.EXECUTION_REASON_UNSPECIFIED),
        (pb.EXECUTION_STATUS_PENDING, pb.EXECUTION_STATUS_UNKNOWN, pb.EXECUTION_REASON_TIMEOUT),
        (pb.EXECUTION_STATUS_UNKNOWN, pb.EXECUTION_STATUS_FILLED, pb.EXECUTION_REASON_UNSPECIFIED),
    ]
    assert "timed out" in response.events[2].error_message
    actors = [e.actor for e in response.events]
    assert actors == ["execute_signal", "execute_signal", "execute_signal", "get_execution"]
    with pytest.raises(asyncpg.RaiseError):
        await env.db.execute("UPDATE execution_events SET to_status = 'filled'")
    with pytest.raises(asyncpg.RaiseError):
        await env.db.execute("DELETE FROM execution_events")


# -- 8. execution rows cannot be deleted, and a known cloid is never signed again ----------------------------


async def test_execution_rows_cannot_be_deleted_or_truncated(env: Env) -> None:
    await env.enable()
    await env.execute(await env.signal())
    with pytest.raises(asyncpg.RaiseError):
        await env.db.execute("DELETE FROM execution_logs")
    with pytest.raises(asyncpg.RaiseError):
        await env.db.execute("TRUNCATE execution_logs CASCADE")
    assert await env.db.fetchval("SELECT count(*) FROM execution_logs") == 1


async def test_a_cloid_the_exchange_already_knows_is_never_signed_again(env: Env) -> None:
    await env.enable()
    decision_id = await env.signal()
    first = await env.execute(decision_id)
    assert first.status == pb.EXECUTION_STATUS_FILLED
    await remove_execution_rows(env)
    again = await env.execute(decision_id)
    assert env.fake.count("order") == 1
    assert again.status == pb.EXECUTION_STATUS_FILLED  # settled from what the exchange knows


# -- orders that reach the exchange after the client gave up --------------------------------------------


async def test_an_order_arriving_after_its_expiry_is_never_placed_and_settles_as_not_placed(env: Env) -> None:
    await env.enable()
    env.fake.late(1.5)  # the order reaches the exchange 1.5 s later, after the client's 1 s timeout
    execution = await env.execute(await env.signal())
    assert outcome(execution) == ("UNKNOWN", "TIMEOUT")
    env.fake.advance_clock(60)  # by the time it arrives, its expiresAfter has passed
    assert env.fake.wait_late()
    (late,) = env.fake.order_requests()
    assert late.processed_at is not None
    assert late.response == {"status": "err", "response": "Action already expired"}
    # Until its expiry (on our clock) the order might still be somewhere: it stays unknown.
    assert (await env.get(execution.id)).status == pb.EXECUTION_STATUS_UNKNOWN
    env.clock_offset[0] = timedelta(minutes=2)
    settled = await env.get(execution.id)
    assert outcome(settled) == ("FAILED", "NOT_PLACED")
    assert env.fake.positions(MAIN) == {}


async def test_an_order_arriving_late_but_before_its_expiry_is_found_filled(env: Env) -> None:
    await env.enable()
    env.fake.late(1.5)
    execution = await env.execute(await env.signal())
    assert outcome(execution) == ("UNKNOWN", "TIMEOUT")
    assert env.fake.wait_late()
    settled = await env.get(execution.id)
    assert outcome(settled) == ("FILLED", "UNSPECIFIED")
    assert settled.fill_size == "0.10500000"
    assert env.fake.positions(MAIN)["ETH"].szi == Decimal("0.105")
    assert env.fake.count("order") == 1


# -- 9. smaller findings -----------------------------------------------------------------------------------


async def test_a_lock_held_until_too_late_is_account_busy_not_an_exchange_error(
    start: Starter,
    fake: FakeHyperliquid,
) -> None:
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    # A 10 s order expiry leaves 1 s to wait for the lock (two 2 s calls and 5 s of margin).
    env = await start(order_expiry_s=10)
    await env.enable()
    async with env.db.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock($1)", lock_key(f"account:{MAIN}"))
        try:
            execution = await env.execute(await env.signal())
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", lock_key(f"account:{MAIN}"))
    assert outcome(execution) == ("FAILED", "ACCOUNT_BUSY")
    assert env.exchange_calls() == []


async def test_unknown_symbols_refresh_meta_at_most_once_per_interval(env: Env) -> None:
    await env.enable()
    for symbol in ("NOPE1", "NOPE2", "NOPE3"):
        execution = await env.execute(await env.signal(symbol))
        assert execution.reason == pb.EXECUTION_REASON_UNKNOWN_SYMBOL
    assert len(env.fake.info_requests("meta")) == 2  # the first load and one refresh


async def test_a_decision_time_in_the_future_does_not_extend_the_signal_age(env: Env) -> None:
    await env.enable(max_signal_age_s=60)
    decision_id = await env.signal(decided_at=ts(datetime.now(UTC) + timedelta(seconds=50)))
    env.clock_offset[0] = timedelta(seconds=100)  # stored 100 s ago, "decided" 50 s ago
    execution = await env.execute(decision_id)
    assert outcome(execution) == ("REJECTED", "STALE_SIGNAL")


async def test_an_isolated_position_keeps_its_margin_mode(env: Env) -> None:
    env.fake.set_position(MAIN, "ETH", "0.01", "1900")
    env.fake.set_leverage(MAIN, "ETH", 5, is_cross=False)
    await env.enable()
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    update = env.fake.exchange_requests("updateLeverage")[0]
    assert update.body["action"]["isCross"] is False
    assert not env.fake.positions(MAIN)["ETH"].is_cross
    assert env.fake.leverage(MAIN, "ETH") == 3


async def test_the_order_is_signed_with_the_recorded_expiry(env: Env) -> None:
    await env.enable()
    execution = await env.execute(await env.signal())
    expires_at = await env.db.fetchval(
        "SELECT order_expires_at FROM execution_logs WHERE id = $1::uuid", execution.id
    )
    expected_ms = int(expires_at.timestamp() * 1000)
    assert [r.body["expiresAfter"] for r in env.fake.requests if r.path == "/exchange"] == [expected_ms] * 2


# -- findings of the review of these fixes -----------------------------------------------------------------


async def test_a_disable_is_acknowledged_only_once_no_order_can_follow_it(
    start: Starter, fake: FakeHyperliquid
) -> None:
    """The kill switch returns after the order being signed has its answer; nothing is sent after it."""
    fake.add_account(key=MAIN_KEY, account_value=10_000)
    env = await start(hl_timeout_s=5)
    await env.enable()
    fake.hang(1.5, apply=True, types=("updateLeverage",))  # past the last check, before the order
    execution = asyncio.ensure_future(env.execute(await env.signal()))
    await asyncio.sleep(0.5)
    await env.configure(enabled=False)
    acknowledged = fake.now_ms()
    assert (await execution).status == pb.EXECUTION_STATUS_FILLED
    (order,) = fake.order_requests()
    assert order.processed_at is not None and order.processed_at <= acknowledged
    error = await expect_error(env.execute(await env.signal()), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "EXECUTION_DISABLED"


async def test_never_placed_is_decided_on_the_exchange_clock_not_ours(env: Env) -> None:
    """Our clock far ahead of the exchange's: an order still on its way must not be called NOT_PLACED."""
    await env.enable()
    env.fake.advance_clock(-60)  # the exchange's clock is a minute behind ours
    env.fake.late(1.5)
    execution = await env.execute(await env.signal())
    assert outcome(execution) == ("UNKNOWN", "TIMEOUT")
    env.clock_offset[0] = timedelta(minutes=2)  # past the order's expiry by our clock only
    assert outcome(await env.get(execution.id)) == ("UNKNOWN", "TIMEOUT")
    assert env.fake.wait_late()  # it arrives, in time by the exchange's clock, and fills
    settled = await env.get(execution.id)
    assert outcome(settled) == ("FILLED", "UNSPECIFIED")
    assert env.fake.positions(MAIN)["ETH"].szi == Decimal("0.105")


async def test_the_priced_order_is_on_record_and_the_record_cannot_be_rewritten(env: Env) -> None:
    await env.enable()
    execution = await env.execute(await env.signal())
    response = await env.executions.GetExecution(pb.GetExecutionRequest(id=execution.id))
    assert [(e.from_status, e.to_status) for e in response.events] == [
        (pb.EXECUTION_STATUS_UNSPECIFIED, pb.EXECUTION_STATUS_PENDING),
        (pb.EXECUTION_STATUS_PENDING, pb.EXECUTION_STATUS_PENDING),  # priced: about to be signed
        (pb.EXECUTION_STATUS_PENDING, pb.EXECUTION_STATUS_FILLED),
    ]
    for change in (
        "UPDATE execution_logs SET status = 'failed'",  # a settled outcome is final
        "UPDATE execution_logs SET fill_size = 1",
        "UPDATE execution_logs SET cloid = '0x' || repeat('0', 32)",  # the claim's identity
    ):
        with pytest.raises(asyncpg.RaiseError):
            await env.db.execute(change)
    with pytest.raises(asyncpg.RaiseError):
        await env.db.execute(
            "INSERT INTO execution_events (execution_id, to_status, actor) VALUES ($1::uuid, 'failed', 'me')",
            execution.id,
        )
    assert len((await env.executions.GetExecution(pb.GetExecutionRequest(id=execution.id))).events) == 3


async def test_identity_of_an_unsettled_claim_cannot_be_changed_either(env: Env) -> None:
    await env.enable()
    env.fake.hang(3, apply=False)
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    other_decision = await env.signal()
    for change in (
        f"UPDATE execution_logs SET decision_id = '{other_decision}'",
        "UPDATE execution_logs SET account_address = '0x' || repeat('1', 40)",
        "UPDATE execution_logs SET dry_run = true",
    ):
        with pytest.raises(asyncpg.RaiseError):
            await env.db.execute(change)


async def test_a_known_cloid_whose_fills_cannot_be_read_stays_unknown_not_failed(env: Env) -> None:
    await env.enable()
    decision_id = await env.signal()
    assert (await env.execute(decision_id)).status == pb.EXECUTION_STATUS_FILLED
    await remove_execution_rows(env)
    env.fake.http_error(500, path="/info", types=("userFillsByTime",))
    again = await env.execute(decision_id)
    assert outcome(again) == ("UNKNOWN", "ALREADY_ON_EXCHANGE")
    assert outcome(await env.get(again.id)) == ("FILLED", "UNSPECIFIED")
    assert env.fake.count("order") == 1


async def test_a_known_order_settles_against_what_it_ordered_not_the_new_plan(env: Env) -> None:
    await env.enable()
    env.fake.set_liquidity("ETH", "0.05")
    decision_id = await env.signal()
    assert (await env.execute(decision_id)).status == pb.EXECUTION_STATUS_PARTIALLY_FILLED
    await remove_execution_rows(env)
    env.fake.deposit(MAIN, -5_000)  # the account shrank: a new plan would size 0.0525
    again = await env.execute(decision_id)
    assert outcome(again) == ("PARTIALLY_FILLED", "UNSPECIFIED")
    assert (again.size, again.fill_size) == ("0.10500000", "0.05000000")


async def test_a_resting_ioc_is_cancelled_again_until_it_is_gone(env: Env) -> None:
    await env.enable()
    env.fake.rest_ioc()
    env.fake.http_error(500, types=("cancelByCloid",))  # the first cancel fails
    execution = await env.execute(await env.signal())
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    assert env.fake.count("cancelByCloid") == 1
    await env.server.executor.reconcile_once()  # sees it still open: cancels again
    assert env.fake.count("cancelByCloid") == 2
    await env.server.executor.reconcile_once()
    assert outcome(await env.get(execution.id)) == ("REJECTED", "IOC_NO_MATCH")


def test_settings_that_would_make_every_live_execution_fail_are_refused() -> None:
    with pytest.raises(ConfigError, match="SIGMA_ORDER_EXPIRY_S"):
        Settings.from_env({"SIGMA_ORDER_EXPIRY_S": "20", "SIGMA_HL_TIMEOUT_S": "10"})
    with pytest.raises(ConfigError, match="SIGMA_DB_POOL_SIZE"):
        Settings.from_env({"SIGMA_DB_POOL_SIZE": "1"})
    assert Settings.from_env({"SIGMA_ORDER_EXPIRY_S": "28", "SIGMA_HL_TIMEOUT_S": "10"}).order_expiry_s == 28
