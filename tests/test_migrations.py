"""The migration runner: once per file, atomic per file, safe with concurrent runners."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
import pytest

from sigma_grpc.app import start_server
from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR, Settings
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.gen.sigma.v1 import decision_service_pb2_grpc as pb_grpc
from sigma_grpc.storage.migrate import MigrationError, apply_migrations
from sigma_grpc.storage.pool import create_pool
from tests.conftest import create_database, drop_database
from tests.helpers import Stub

ROOT = Path(__file__).resolve().parent.parent
ALL = [
    "060_decision_logs",
    "061_execution_config",
    "062_decision_contract_v1",
    "063_execution_history",
    "064_authenticated_audit",
    "065_stats_rollups",
    "066_signal_quality",
    "067_closed_fingerprint",
    "068_gate_analytics_rollups",
    "069_close_time_rollups",
    "070_faster_gate_entries",
    "071_analytics_review_fixes",
    "072_close_summaries",
    "073_content_fingerprint",
]


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url)
    yield url
    await drop_database(server_url, url)


async def _applied(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()


async def test_applying_twice_applies_once(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        assert await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR) == ALL
        assert await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR) == []
        assert await conn.fetchval("SELECT count(*) FROM decision_logs") == 0
        # A new database starts with execution off, in dry run, at the plan's limits.
        config = await conn.fetchrow("SELECT * FROM execution_config")
        assert config is not None
        assert dict(config) | {"updated_at": None} == {
            "id": 1,
            "enabled": False,
            "hl_enabled": False,
            "dry_run": True,
            "hl_max_leverage": 3,
            "hl_max_position_pct": Decimal("0.02"),
            "hl_max_exposure_pct": Decimal("0.10"),
            "hl_slippage_pct": Decimal("0.01"),
            "max_signal_age_s": 120,
            "max_price_drift_pct": Decimal("0.01"),
            "updated_at": None,
        }
    finally:
        await conn.close()
    assert await _applied(empty_database) == ALL


async def test_two_processes_migrating_at_once(empty_database: str) -> None:
    """Two `sigma-grpc migrate` processes started together: each file is applied exactly once."""
    env = {**os.environ, "SIGMA_DATABASE_URL": empty_database}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sigma_grpc",
            "migrate",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    outputs = sorted(out.decode().strip() for out, _ in results)
    assert outputs == [f"applied: {', '.join(ALL)}", "nothing to apply"]
    assert await _applied(empty_database) == ALL


async def test_a_failing_migration_leaves_nothing_behind(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "001_first.sql").write_text("CREATE TABLE first_table (id INT);")
    (tmp_path / "002_broken.sql").write_text("CREATE TABLE half_done (id INT);\nSELECT 1 / 0;")
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_migrations(conn, tmp_path)
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        assert "first_table" in tables
        assert "half_done" not in tables
    finally:
        await conn.close()
    assert await _applied(empty_database) == ["001_first"]


async def test_an_edited_migration_is_refused(empty_database: str, tmp_path: Path) -> None:
    shutil.copy(DEFAULT_MIGRATIONS_DIR / "060_decision_logs.sql", tmp_path)
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn, tmp_path)
        edited = tmp_path / "060_decision_logs.sql"
        edited.write_text(edited.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


async def test_badly_named_files_are_refused(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "add_table.sql").write_text("SELECT 1;")
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(MigrationError, match="NNN_snake_case"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


async def test_a_missing_migrations_folder_is_an_error_not_an_empty_schema(
    empty_database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(MigrationError, match="SIGMA_MIGRATIONS_DIR"):
            await apply_migrations(conn, tmp_path / "nowhere")
    finally:
        await conn.close()


async def test_rows_stored_under_the_060_rules_stay_usable_after_062(
    empty_database: str, tmp_path: Path
) -> None:
    """Signals the pre-v1 API accepted (no gate, no trader, a failed risk check) can still get outcomes."""
    for name in ("060_decision_logs.sql", "061_execution_config.sql"):
        shutil.copy(DEFAULT_MIGRATIONS_DIR / name, tmp_path)
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn, tmp_path)
        legacy = [
            await conn.fetchval(
                """
                INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                           effective_k, gates, risk_checks, reasoning, request_id)
                VALUES ('BTC', 'long', 'signal', $1, 0.8, 3.0, $2::jsonb, $3::jsonb, 'old', $4)
                RETURNING id::text
                """,
                trader_count,
                gates,
                risk_checks,
                request_id,
            )
            for trader_count, gates, risk_checks, request_id in [
                (0, "[]", "[]", "old-1"),
                (3, '[{"name": "g", "passed": true}]', '[{"name": "r", "passed": false}]', "old-2"),
            ]
        ]
        assert await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR) == ALL[2:]
    finally:
        await conn.close()

    pool = await create_pool(empty_database, max_size=2)
    server = await start_server(pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            api: Stub = pb_grpc.DecisionServiceStub(channel)
            for decision_id in legacy:
                request = pb.RecordOutcomeRequest(
                    decision_id=decision_id, outcome_pnl="2", outcome_r_multiple=0.4
                )
                closed = (await api.RecordOutcome(request, timeout=5)).decision
                assert (closed.outcome_pnl, closed.outcome_r_multiple) == ("2.00000000", 0.4)
            # The new rules hold for every new row, at the database too.
            with pytest.raises(asyncpg.CheckViolationError):
                await pool.execute(
                    """
                    INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                               effective_k, gates, reasoning)
                    VALUES ('BTC', 'long', 'signal', 0, 0.8, 3.0, '[]'::jsonb, 'new')
                    """
                )
    finally:
        await server.stop(grace=1)
        await pool.close()
