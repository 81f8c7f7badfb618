"""Defects an adversarial review of the signal-quality analytics found (migrations 067-070).

Each test failed on the code it was written against; migration 071 (and 068, corrected in
place before any release) fixed them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.storage.migrate import apply_migrations
from tests.conftest import create_database, drop_database
from tests.helpers import Stub, close_signal, gate, log_id, signal, skip, ts


async def test_a_failed_gate_with_a_tiny_threshold_can_be_logged(api: Stub) -> None:
    # Both numbers pass validation (finite, |x| <= 1e15), but the near-miss distance
    # |value - threshold| / |threshold| = 1e309 overflows float8 in decision_gate_entries
    # (PostgreSQL raises "value out of range: overflow"), so the trigger fails the INSERT.
    request = skip(gates=[gate("ev_gate", False, 1e15, 1e-294)])
    await api.LogDecision(request)
    analytics = await api.GetGateAnalytics(pb.GetGateAnalyticsRequest(days=1))
    assert [g.name for g in analytics.gates] == ["ev_gate"]


async def _insert_raw(
    db: asyncpg.Pool, decision_type: str, gates: list[dict[str, object]], decided_at: datetime
) -> None:
    await db.execute(
        """
        INSERT INTO decision_logs (decided_at, symbol, direction, decision_type, trader_count,
                                   agreement_pct, effective_k, gates, reasoning)
        VALUES ($1, 'ETH', $2, $3, 5, 0.6, 2.5, $4, 'old row')
        """,
        decided_at,
        "long" if decision_type == "signal" else "none",
        decision_type,
        gates,
    )


async def test_duplicate_gate_names_of_an_old_row_count_the_decision_once(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    # An old row (the API rejects duplicate names; the table never did) naming one gate twice.
    # GateStats.evaluated is "Decisions that recorded this gate", only_failure "Decisions where
    # it was the only failing gate"; GetStats counts the failure once (migration 065).
    failed = {"name": "supermajority", "passed": False, "value": 0.6, "threshold": 0.7}
    await _insert_raw(clean_db, "skip", [failed, failed], datetime.now(UTC) - timedelta(hours=3))
    stats = await api.GetStats(pb.GetStatsRequest(days=1))
    assert [(f.name, f.count) for f in stats.gate_failures] == [("supermajority", 1)]
    analytics = await api.GetGateAnalytics(pb.GetGateAnalyticsRequest(days=1))
    (g,) = analytics.gates
    assert (g.evaluated, g.failed, g.only_failure) == (1, 1, 1)
    assert sum(b.count for b in g.near_misses) == 1


async def test_a_hand_update_of_decided_at_is_not_answered_from_the_cache(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    # The rollups follow any update (README: triggers apply every insert, outcome, delete);
    # the cache of closed-signal figures is keyed only by the set of ids, so an update of
    # decided_at (same set) is answered with the old median holding time.
    decided = datetime.now(UTC) - timedelta(hours=5)
    first = await log_id(api, signal(decided_at=ts(decided)))
    second = await log_id(api, signal(decided_at=ts(decided)))
    await close_signal(api, first, "10", 1.0, decided + timedelta(hours=1))
    await close_signal(api, second, "10", 1.0, decided + timedelta(hours=3))
    before = (await api.GetStats(pb.GetStatsRequest(days=1))).totals
    assert before.median_holding_time.ToTimedelta() == timedelta(hours=2)
    await clean_db.execute(
        "UPDATE decision_logs SET decided_at = decided_at - INTERVAL '2 hours' WHERE id = $1::uuid", first
    )
    # Holding times are now 3 h and 3 h: a server started afresh answers 3 h.
    after = (await api.GetStats(pb.GetStatsRequest(days=1))).totals
    assert after.median_holding_time.ToTimedelta() == timedelta(hours=3)


@pytest.mark.parametrize(
    "gates",
    [
        [{"passed": True, "value": 0.8, "threshold": 0.7}],
        [{"name": "supermajority", "passed": True, "value": "n/a", "threshold": 0.7}],
    ],
    ids=["passed-gate-without-name", "non-numeric-value"],
)
async def test_migration_068_applies_to_a_database_holding_rows_of_060s_rules(
    server_url: str, gates: list[dict[str, object]]
) -> None:
    # Rows stored under 060's looser rules stay in the table (062 says so): a passed gate
    # without a name, or a non-numeric value, are allowed by every CHECK and trigger up to 067.
    url = await create_database(server_url)
    folder = Path(tempfile.mkdtemp(prefix="sigma-review-"))
    try:
        for path in DEFAULT_MIGRATIONS_DIR.glob("*.sql"):
            if int(path.name.split("_", 1)[0]) <= 67:
                shutil.copy(path, folder / path.name)
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(conn, folder)
            await conn.execute(
                """
                INSERT INTO decision_logs (symbol, direction, decision_type, trader_count,
                                           agreement_pct, effective_k, gates, reasoning)
                VALUES ('BTC', 'long', 'signal', 5, 0.8, 3, $1::jsonb, 'old row')
                """,
                json.dumps(gates),
            )
            await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR)
        finally:
            await conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        await drop_database(server_url, url)
