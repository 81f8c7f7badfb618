"""The stats rollups under concurrent writers, compaction and rebuilds (defects an adversarial review
reproduced): no deadlock, no double count, and a pool whose sessions do not depend on the server's
defaults."""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from sigma_grpc.domain.models import DecisionType, Direction, Gate, NewDecision
from sigma_grpc.storage.decisions import DecisionStore, ToInsert
from sigma_grpc.storage.pool import Database, create_pool, is_unavailable
from tests.conftest import create_database, drop_database

# Every decision of these tests is a SKIP with at least one failed gate, so each rollup counts
# each decision once per span: in decision_stats, and as a set of failed gates (migration 068).
TOTALS = """
    SELECT (SELECT count(*) FROM decision_logs) AS rows,
           (SELECT COALESCE(sum(total), 0) FROM decision_stats WHERE span = 1) AS hourly,
           (SELECT COALESCE(sum(total), 0) FROM decision_stats WHERE span = 24) AS daily,
           (SELECT COALESCE(sum(n), 0) FROM decision_gate_combinations WHERE span = 1) AS sets_hourly,
           (SELECT COALESCE(sum(n), 0) FROM decision_gate_combinations WHERE span = 24) AS sets_daily
"""


def each(count: int) -> dict[str, int]:
    """What `totals` gives for `count` decisions counted once everywhere."""
    return dict.fromkeys(("rows", "hourly", "daily", "sets_hourly", "sets_daily"), count)


async def totals(conn: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(TOTALS)
    assert row is not None
    return dict(row)


def _skip(rng: random.Random, now: datetime, request_id: str | None = None) -> ToInsert:
    new = NewDecision(
        symbol=f"S{rng.randrange(40)}",
        direction=Direction.NONE,
        decision_type=DecisionType.SKIP,
        trader_count=1,
        agreement_pct=Decimal("0.5000"),
        effective_k=Decimal("1.000"),
        avg_confidence=None,
        ev_estimate=None,
        price_at_decision=None,
        gates=tuple(Gate(name, False) for name in rng.sample(("g1", "g2", "g3", "g4"), rng.randint(1, 4))),
        risk_checks=(),
        request_id=request_id,
        decided_at=now - timedelta(seconds=rng.uniform(0, 200 * 3600)),
    )
    return ToInsert(new, "skipped", new.content_hash() if request_id else None)


@pytest.fixture
async def store(database_url: str, clean_db: asyncpg.Pool) -> AsyncIterator[DecisionStore]:
    # As many connections as writers, so every rollup stripe has several writers at once.
    pool = await create_pool(database_url, min_size=16, max_size=16)
    yield DecisionStore(Database(pool))
    await pool.close()


async def _write_batches(store: DecisionStore, now: datetime, failures: collections.Counter[str]) -> int:
    async def writer(seed: int) -> int:
        rng, written = random.Random(seed), 0
        for _ in range(12):
            batch = [_skip(rng, now) for _ in range(rng.choice((1, 5, 50, 200)))]
            try:
                await store.insert_many(batch)
                written += len(batch)
            except Exception as error:
                failures[type(error.__cause__ or error).__name__] += 1
        return written

    return sum(await asyncio.gather(*(writer(seed) for seed in range(16))))


async def test_concurrent_batches_over_many_buckets_never_deadlock(
    store: DecisionStore, clean_db: asyncpg.Pool
) -> None:
    failures: collections.Counter[str] = collections.Counter()
    written = await _write_batches(store, datetime.now(UTC), failures)

    assert failures == {}
    assert await totals(clean_db) == each(written)


async def test_compaction_beside_writers_of_past_hours_neither_deadlocks_nor_miscounts(
    store: DecisionStore, clean_db: asyncpg.Pool
) -> None:
    failures: collections.Counter[str] = collections.Counter()
    writing = asyncio.ensure_future(_write_batches(store, datetime.now(UTC), failures))
    compactions = 0
    while not writing.done():
        try:
            await store.compact_stats()
            compactions += 1
        except Exception as error:
            failures["compaction " + type(error.__cause__ or error).__name__] += 1
    written = await writing
    await store.compact_stats()

    assert failures == {}
    assert compactions > 1
    assert await totals(clean_db) == each(written)


async def test_two_batches_with_the_same_request_ids_in_other_orders_both_succeed(
    store: DecisionStore, clean_db: asyncpg.Pool
) -> None:
    rng, now = random.Random(7), datetime.now(UTC)
    entries = [_skip(rng, now, f"rid-{uuid.uuid4()}") for _ in range(500)]

    first, second = await asyncio.gather(
        store.insert_many(entries), store.insert_many(entries[::-1]), return_exceptions=True
    )

    assert not isinstance(first, BaseException), first
    assert not isinstance(second, BaseException), second
    assert sum(not i.replayed for i in first) + sum(not i.replayed for i in second) == 500
    assert await totals(clean_db) == each(500)


async def test_a_rebuild_racing_the_compaction_counts_each_decision_once(
    database_url: str, clean_db: asyncpg.Pool
) -> None:
    writer = await asyncpg.connect(database_url)
    while await writer.fetchval("SELECT pg_backend_pid() % 8") == 0:  # a stripe compaction folds
        await writer.close()
        writer = await asyncpg.connect(database_url)
    compaction, rebuild = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await writer.execute(
            """
            INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                       effective_k, gates, reasoning, decided_at)
            SELECT 'BTC', 'none', 'skip', 1, 0.5, 1, '[{"name": "g1", "passed": false}]', 'r',
                   NOW() - INTERVAL '3 days'
            FROM generate_series(1, 10)
            """
        )
        await compaction.execute("BEGIN")
        await compaction.execute("SELECT decision_stats_compact(date_trunc('hour', NOW(), 'UTC'))")
        rebuilding = asyncio.ensure_future(rebuild.execute("SELECT decision_stats_rebuild()"))
        await asyncio.sleep(0.5)  # the rebuild now waits for the compaction
        await compaction.execute("COMMIT")
        await rebuilding
        counted = await totals(writer)
    finally:
        for conn in (writer, compaction, rebuild):
            await conn.close()

    assert counted == each(10)


async def test_two_rebuilds_at_once_count_each_decision_once(
    database_url: str, clean_db: asyncpg.Pool
) -> None:
    await clean_db.execute(
        """
        INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                   effective_k, gates, reasoning, decided_at)
        SELECT 'BTC', 'none', 'skip', 1, 0.5, 1, '[{"name": "g1", "passed": false}]', 'r',
               NOW() - make_interval(hours => i)
        FROM generate_series(1, 7) AS i
        """
    )
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await asyncio.gather(
            first.execute("SELECT decision_stats_rebuild()"),
            second.execute("SELECT decision_stats_rebuild()"),
        )
    finally:
        await first.close()
        await second.close()

    assert await totals(clean_db) == each(7)


async def test_the_pools_sessions_are_utc_and_read_committed_whatever_the_databases_defaults(
    server_url: str,
) -> None:
    url = await create_database(server_url)
    try:
        admin = await asyncpg.connect(url)
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'serializable'")
        await admin.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'America/New_York'")
        await admin.close()
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW default_transaction_isolation") == "read committed"
                assert await conn.fetchval("SHOW TimeZone") == "UTC"
        finally:
            await pool.close()
    finally:
        await drop_database(server_url, url)


@pytest.mark.parametrize("error", [asyncpg.DeadlockDetectedError(), asyncpg.SerializationError()])
def test_a_deadlock_or_serialization_failure_is_retryable(error: Exception) -> None:
    # The statement was rolled back whole: the same request again is safe.
    assert is_unavailable(error)
