"""GetStats' closed-signal figures from the close-hour summaries (migration 072).

A window's figures combine the stored summaries of its close days and hours where they
still match the hour and read the other hours' rows. Whatever mix of the two a
window gets (no summaries, all fresh, some stale after new outcomes and
deletes, a window starting inside an hour), the figures must equal the
from-scratch SQL computation of tests/test_signal_quality.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from sigma_grpc.api.decision_convert import stats_message
from sigma_grpc.app import start_server
from sigma_grpc.config import Settings
from sigma_grpc.domain.models import StatsQuery
from sigma_grpc.domain.stats import build_stats
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.services.decisions import maintain_stats_periodically
from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.pool import Database, create_pool
from tests.helpers import Stub, close_signal
from tests.test_signal_quality import _assert_closed_figures, _expected_closed_figures, _random_history
from tests.test_stats_rollups import OFFSETS


async def assert_figures_exact(store: DecisionStore, db: asyncpg.Pool, now: datetime, where: object) -> None:
    """Every window and symbol's closed figures, read by storage (no service cache), against SQL."""
    for days, symbol in [(1, None), (2, "BTC"), (3, None), (10, None), (10, "kPEPE"), (30, "NONE")]:
        rows = await store.stats_rows(StatsQuery(days=days, symbol=symbol), now=now)
        stats = stats_message(build_stats(days, rows))
        expected = await _expected_closed_figures(db, rows.window_start, symbol)
        _assert_closed_figures(stats.totals, expected.get("*"), (where, days, symbol))
        for s in stats.by_symbol:
            _assert_closed_figures(s.stats, expected.get(s.symbol), (where, days, s.symbol))


async def test_figures_are_exact_with_fresh_stale_or_missing_summaries(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    rng = random.Random(72)
    now = datetime.now(UTC)
    await _random_history(api, rng, now, 500)
    store = DecisionStore(Database(clean_db))
    await assert_figures_exact(store, clean_db, now, "no summaries")

    assert await store.refresh_close_summaries() > 0
    assert await store.refresh_close_summaries() == 0  # nothing changed since
    hour = now.replace(minute=0, second=0, microsecond=0)
    for offset in OFFSETS:  # windows starting anywhere in their hour, among summarised hours
        await assert_figures_exact(store, clean_db, hour + offset, ("fresh", offset))

    # New outcomes and deletes make some hours' summaries stale: those hours are read from rows.
    open_signals = await clean_db.fetch(
        "SELECT id, decided_at FROM decision_logs WHERE decision_type = 'signal' AND outcome_pnl IS NULL"
    )
    for row in rng.sample(open_signals, min(20, len(open_signals))):
        closed_at = min(row["decided_at"] + timedelta(hours=rng.uniform(0.1, 30)), now)
        await close_signal(api, str(row["id"]), "12.5", 0.75, closed_at)
    doomed = await clean_db.fetch("SELECT id FROM decision_logs WHERE outcome_pnl IS NOT NULL LIMIT 15")
    await clean_db.execute("DELETE FROM decision_logs WHERE id = ANY($1)", [r["id"] for r in doomed])
    stale = await clean_db.fetchval(
        """
        SELECT count(*) FROM decision_close_summaries AS s
        WHERE s.fingerprint IS DISTINCT FROM (
            SELECT sum(closed_fingerprint) FROM decision_close_stats AS c
            WHERE c.span = s.span AND c.bucket = s.bucket AND (s.symbol = '' OR c.symbol = s.symbol))
        """
    )
    assert stale > 0
    await assert_figures_exact(store, clean_db, now, "stale")

    assert await store.refresh_close_summaries() > 0
    await assert_figures_exact(store, clean_db, now, "refreshed")


async def test_a_summary_counts_only_while_its_fingerprint_is_its_buckets(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    rng = random.Random(73)
    now = datetime.now(UTC)
    await _random_history(api, rng, now, 200)
    store = DecisionStore(Database(clean_db))
    await store.refresh_close_summaries()
    query = StatsQuery(days=10, symbol=None)
    exact = stats_message(build_stats(10, await store.stats_rows(query, now=now)))

    async def figures() -> pb.GetStatsResponse:
        return stats_message(build_stats(10, await store.stats_rows(query, now=now)))

    async def falsify(span: int, change: str) -> None:
        await clean_db.execute(
            f"UPDATE decision_close_summaries SET {change} WHERE span = $1 AND symbol = ''"
            " AND bucket = (SELECT max(bucket) FROM decision_close_summaries WHERE span = $1)",
            span,
        )

    # A summary that claims its bucket's fingerprint is read instead of the rows: the window
    # takes its (falsified) worst R. The newest day is read from its day summary...
    await falsify(24, "worst = -999990000")
    assert (await figures()).totals.worst_r == -99999.0
    # ...and, that one no longer matching its day, from the day's hour summaries...
    await falsify(24, "fingerprint = fingerprint + 1")
    assert await figures() == exact
    await falsify(1, "worst = -999990000")
    assert (await figures()).totals.worst_r == -99999.0
    # ...and an hour whose summary no longer matches, from its rows.
    await falsify(1, "fingerprint = fingerprint + 1")
    assert await figures() == exact


async def test_the_service_refreshes_the_summaries_in_the_background(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    rng = random.Random(74)
    await _random_history(api, rng, datetime.now(UTC), 100)
    assert await clean_db.fetchval("SELECT count(*) FROM decision_close_summaries") == 0
    store = DecisionStore(Database(clean_db))
    maintenance = asyncio.create_task(maintain_stats_periodically(store, interval_s=3600, first_delay_s=0))
    days_closing = await clean_db.fetchval(
        "SELECT count(DISTINCT bucket) FROM decision_close_stats WHERE span = 24 AND closed > 0"
    )
    try:
        async with asyncio.timeout(30):
            while days_closing != await clean_db.fetchval(
                "SELECT count(*) FROM decision_close_summaries WHERE span = 24 AND symbol = ''"
            ):
                await asyncio.sleep(0.05)
    finally:
        maintenance.cancel()
    assert await store.refresh_close_summaries() == 0


async def test_a_server_told_to_warm_up_reads_the_default_windows_before_it_takes_calls(
    api: Stub, clean_db: asyncpg.Pool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Its first callers after a restart then find the reads kept and a connection that planned them.
    await _random_history(api, random.Random(76), datetime.now(UTC), 50)
    pool = await create_pool(database_url, max_size=2)
    try:
        for warm_up in (False, True):  # off by default: it delays SERVING
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="sigma_grpc.app"):
                settings = Settings(reconcile_interval_s=3600, warm_up=warm_up)
                running = await start_server(pool, "127.0.0.1:0", settings)
            await running.stop(grace=1)
            warmed = any(r.getMessage().startswith("read path warmed up") for r in caplog.records)
            assert warmed == warm_up
    finally:
        await pool.close()


async def test_a_day_that_cannot_be_summarised_does_not_stop_the_older_ones(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    await _random_history(api, random.Random(77), datetime.now(UTC), 200)
    days = await clean_db.fetchval(
        "SELECT count(DISTINCT bucket) FROM decision_close_stats WHERE span = 24 AND closed > 0"
    )
    newest = await clean_db.fetchval("SELECT max(bucket) FROM decision_close_stats WHERE span = 24")
    store = DecisionStore(Database(clean_db))
    summarised_days = "SELECT count(*) FROM decision_close_summaries WHERE span = 24 AND symbol = ''"
    # The newest day, refreshed first, cannot be written (a real refusal from the database).
    await clean_db.execute(
        "ALTER TABLE decision_close_summaries ADD CONSTRAINT refuse_newest"
        f" CHECK (bucket < '{newest.isoformat()}' OR bucket >= '{(newest + timedelta(days=1)).isoformat()}')"
    )
    try:
        with pytest.raises(RuntimeError, match="1 day"):
            await store.refresh_close_summaries()
        assert await clean_db.fetchval(summarised_days) == days - 1
    finally:
        await clean_db.execute("ALTER TABLE decision_close_summaries DROP CONSTRAINT refuse_newest")
    assert await store.refresh_close_summaries() == 1
    assert await clean_db.fetchval(summarised_days) == days
