"""A database gone, saturated or slow: UNAVAILABLE (DATABASE_UNAVAILABLE) in time, nothing half-written.

Pool acquires and statements are bounded by the call's deadline, so the caller
gets a retryable status with its reason rather than DEADLINE_EXCEEDED, and a
retry with the same request_id stores the decision exactly once.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR, Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.gen.sigma.v1 import execution_service_pb2 as epb
from sigma_grpc.gen.sigma.v1 import execution_service_pb2_grpc as epb_grpc
from sigma_grpc.storage.embedded import start_embedded
from sigma_grpc.storage.migrate import apply_migrations
from sigma_grpc.storage.pool import create_pool
from tests.db_proxy import FreezableProxy
from tests.helpers import Stub, error_reason, expect_error, signal


async def _unavailable(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    error = await expect_error(call, grpc.StatusCode.UNAVAILABLE)
    assert error_reason(error) == "DATABASE_UNAVAILABLE"
    assert "retrying is safe" in (error.details() or "")
    return error


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[Path, str]]:
    """A PostgreSQL of this test's own (it gets stopped), migrated; its folder and URL."""
    folder = Path(tempfile.mkdtemp(prefix="sigma-down-"))
    embedded = start_embedded(folder)
    conn = await asyncpg.connect(embedded.url)
    try:
        await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR)
    finally:
        await conn.close()
    try:
        yield folder, embedded.url
    finally:
        await asyncio.to_thread(start_embedded(folder).stop)
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_stopped_database_is_unavailable_then_recovers(own_postgres: tuple[Path, str]) -> None:
    folder, url = own_postgres
    pool = await create_pool(url, max_size=2)
    server = await start_server(pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            api: Stub = pb_grpc.DecisionServiceStub(channel)
            executions = epb_grpc.ExecutionServiceStub(channel)
            logged = (await api.LogDecision(signal(request_id="before"), timeout=5)).decision

            await asyncio.to_thread(start_embedded(folder).stop)
            # Pooled connections are now dead, and new ones are refused: every RPC says so in time.
            await _unavailable(api.LogDecision(signal(request_id="during"), timeout=5))
            await _unavailable(api.GetDecision(pb.GetDecisionRequest(id=logged.id), timeout=5))
            await _unavailable(api.ListDecisions(pb.ListDecisionsRequest(), timeout=5))
            await _unavailable(api.GetStats(pb.GetStatsRequest(), timeout=5))
            await _unavailable(executions.GetExecutionConfig(epb.GetExecutionConfigRequest(), timeout=5))

            await asyncio.to_thread(start_embedded, folder)
            # The same request_id once the database is back: stored exactly once.
            again = await api.LogDecision(signal(request_id="during"), timeout=10)
            assert not again.replayed
            listed = await api.ListDecisions(pb.ListDecisionsRequest(), timeout=5)
            assert {d.request_id for d in listed.decisions} == {"before", "during"}
    finally:
        await server.stop(grace=1)
        await pool.close()


@pytest.fixture
async def one_connection_server(database_url: str, clean_db: asyncpg.Pool) -> AsyncIterator[RunningServer]:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    server = await start_server(pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600))
    yield server
    await server.stop(grace=1)
    await pool.close()


async def test_no_free_connection_before_the_deadline_is_unavailable(
    one_connection_server: RunningServer, database_url: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{one_connection_server.port}") as channel:
        api: Stub = pb_grpc.DecisionServiceStub(channel)
        # A slow call holds the server's only connection (GetStats reads the rollups first)...
        blocker = await asyncpg.connect(database_url)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE decision_logs, decision_stats IN ACCESS EXCLUSIVE MODE")
                slow = asyncio.ensure_future(api.GetStats(pb.GetStatsRequest(), timeout=3))
                await asyncio.sleep(0.3)
                # ...so this one waits for the pool, and is answered before its own deadline.
                request = pb.GetDecisionRequest(id="0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b")
                await _unavailable(api.GetDecision(request, timeout=1))
                await _unavailable(slow)
        finally:
            await blocker.close()
        # Afterwards the connection is free again.
        assert (await api.GetStats(pb.GetStatsRequest(), timeout=5)).totals.total_decisions == 0


async def test_a_statement_that_outruns_the_deadline_is_unavailable_and_writes_nothing(
    api: Stub, clean_db: asyncpg.Pool, database_url: str
) -> None:
    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE decision_logs IN ACCESS EXCLUSIVE MODE")
            await _unavailable(api.LogDecision(signal(request_id="blocked"), timeout=1))
            await _unavailable(api.ListDecisions(pb.ListDecisionsRequest(), timeout=1))
    finally:
        await blocker.close()
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 0
    # The server cancelled its statements: nothing is left waiting on the lock.
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = $1"
    assert await clean_db.fetchval(waiting, urlsplit(database_url).path.lstrip("/")) == 0
    retried = await api.LogDecision(signal(request_id="blocked"), timeout=5)
    assert not retried.replayed
    assert await clean_db.fetchval("SELECT count(*) FROM decision_logs") == 1


async def test_a_database_that_stops_answering_is_unavailable_before_the_deadline(
    database_url: str, clean_db: asyncpg.Pool
) -> None:
    """A partition (no resets, no answers): every kind of call still answers in time, then recovers."""
    proxy = FreezableProxy(database_url)
    await proxy.start()
    pool = await create_pool(proxy.url, min_size=2, max_size=2)
    server = await start_server(pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            api: Stub = pb_grpc.DecisionServiceStub(channel)
            executions = epb_grpc.ExecutionServiceStub(channel)
            logged = (await api.LogDecision(signal(request_id="before"), timeout=5)).decision

            proxy.freeze()
            outcome = pb.RecordOutcomeRequest(decision_id=logged.id, outcome_pnl="1", outcome_r_multiple=0.5)
            config = epb.UpdateExecutionConfigRequest(
                config=epb.ExecutionConfig(hl_max_leverage=2),
                update_mask=field_mask_pb2.FieldMask(paths=["hl_max_leverage"]),
            )
            await _unavailable(api.ListDecisions(pb.ListDecisionsRequest(), timeout=2))
            await _unavailable(api.GetStats(pb.GetStatsRequest(), timeout=2))
            await _unavailable(api.RecordOutcome(outcome, timeout=2))
            await _unavailable(executions.UpdateExecutionConfig(config, timeout=2))
            await _unavailable(api.LogDecision(signal(request_id="during"), timeout=2))

            proxy.thaw()
            again = await api.LogDecision(signal(request_id="during"), timeout=10)
            assert (await api.RecordOutcome(outcome, timeout=10)).decision.outcome_pnl == "1.00000000"
            assert (await executions.UpdateExecutionConfig(config, timeout=10)).config.hl_max_leverage == 2
    finally:
        await server.stop(grace=1)
        await pool.close()
        await proxy.close()
    rows = await clean_db.fetch("SELECT request_id FROM decision_logs ORDER BY request_id")
    assert [r["request_id"] for r in rows] == ["before", "during"]
    assert again.decision.request_id == "during"
