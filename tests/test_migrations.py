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
import pytest

from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR
from sigma_grpc.storage.migrate import MigrationError, apply_migrations
from tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
ALL = ["060_decision_logs", "061_execution_config", "062_decision_contract_v1"]


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
