"""sigma_grpc.client, the typed client hl-decide uses, against the real server."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.client import DecisionClient, Gate, RiskCheck, gates_from_dicts
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.storage.pool import create_pool


@pytest.fixture
async def client(server: RunningServer, clean_db: asyncpg.Pool) -> DecisionClient:
    return DecisionClient(f"127.0.0.1:{server.port}")


async def test_the_whole_flow_with_plain_python_values(client: DecisionClient) -> None:
    decided = datetime.now(UTC) - timedelta(minutes=5)
    signal = await client.log_decision(
        symbol="BTC",
        direction="long",
        decision_type="signal",
        trader_count=7,
        agreement_pct=0.8,
        effective_k=3.2,
        avg_confidence=0.66,
        price_at_decision=Decimal("97123.5"),
        gates=gates_from_dicts([{"name": "supermajority", "passed": True, "value": 0.8, "threshold": 0.7}]),
        decided_at=decided,
    )
    assert signal.direction == pb.DIRECTION_LONG
    assert signal.price_at_decision == "97123.50000000"
    assert signal.avg_confidence == 0.66
    assert not signal.HasField("ev_estimate")
    assert signal.decided_at.ToDatetime(tzinfo=UTC) == decided
    assert signal.request_id  # generated, so retries are safe

    reject = await client.log_decision(
        symbol="ETH",
        direction="none",
        decision_type="risk_reject",
        trader_count=3,
        agreement_pct=0.7,
        effective_k=1.5,
        risk_checks=[RiskCheck("max_exposure", False, 0.2, 0.1)],
    )
    assert reject.reasoning.endswith("Failed risk checks: max_exposure (value 0.2 vs limit 0.1).")

    closed = await client.record_outcome(signal.id, pnl=Decimal("-3.5"), r_multiple=-0.7)
    assert (closed.outcome_pnl, closed.outcome_r_multiple) == ("-3.50000000", -0.7)
    assert (await client.get_decision(signal.id)) == closed

    page = await client.list_decisions(decision_type="signal", outcome="loss")
    assert [d.id for d in page.decisions] == [signal.id]
    everything = [d.id async for d in client.iter_decisions(page_size=1)]
    assert everything == [reject.id, signal.id]

    stats = await client.get_stats(days=1)
    assert (stats.total_decisions, stats.signal_count, stats.loss_count) == (2, 1, 1)
    assert stats.total_pnl == "-3.50000000"
    await client.close()


async def test_a_given_request_id_makes_retries_return_the_first_decision(client: DecisionClient) -> None:
    fields = {
        "symbol": "SOL",
        "direction": "short",
        "decision_type": "skip",
        "trader_count": 2,
        "agreement_pct": 0.5,
        "effective_k": 1.0,
        "gates": [Gate("supermajority", False, 0.5, 0.7)],
    }
    first = await client.log_decision(**fields, request_id="hl-decide-42")  # type: ignore[arg-type]
    again = await client.log_decision(**fields, request_id="hl-decide-42")  # type: ignore[arg-type]
    other = await client.log_decision(**fields)  # type: ignore[arg-type]
    assert again == first
    assert other.id != first.id
    await client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_unavailable_is_retried_until_the_server_is_up(
    database_url: str, clean_db: asyncpg.Pool
) -> None:
    """A call made while the server is still starting succeeds once it is up."""
    port = _free_port()
    async with DecisionClient(f"127.0.0.1:{port}", timeout=10) as client:
        call = asyncio.ensure_future(client.get_stats())
        await asyncio.sleep(0.3)
        assert not call.done()
        pool = await create_pool(database_url, max_size=2)
        running = await start_server(pool, f"127.0.0.1:{port}")
        try:
            stats = await call
            assert stats.total_decisions == 0
        finally:
            await running.stop(grace=1)
            await pool.close()
