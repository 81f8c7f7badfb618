"""Shared fixtures: a real PostgreSQL, a real grpc.aio server on a free port, real stubs.

The database is SIGMA_TEST_DATABASE_URL's server when set, otherwise a throwaway
embedded PostgreSQL (the same mechanism `serve` uses). Each test session gets
its own database, migrated once; every test starts from empty tables.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from sigma_grpc.app import RunningServer, start_server
from sigma_grpc.config import DEFAULT_MIGRATIONS_DIR, Settings
from sigma_grpc.storage.embedded import start_embedded
from sigma_grpc.storage.migrate import apply_migrations
from sigma_grpc.storage.pool import create_pool
from tests.auth_env import certificates  # noqa: F401 (a fixture of the TLS tests)
from tests.execution_env import env, fake, start  # noqa: F401 (fixtures of the execution tests)
from tests.helpers import Stub
from tests.secret_scan import RecordingHandler, scan, take_outputs

_LOG_RECORDS = RecordingHandler()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_LOG_RECORDS)
    # The service's DEBUG lines (each error status it answers among them) are scanned too.
    logging.getLogger("sigma_grpc").setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[None]:
    """Fails the test when a secret (private key, auth token) reached a log line or error text."""
    _LOG_RECORDS.take()
    take_outputs()
    yield
    scan(_LOG_RECORDS.take(), "a log line")
    scan(take_outputs(), "a subprocess's output")


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (works for unix-socket URLs too)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server the tests may create databases on."""
    external = os.environ.get("SIGMA_TEST_DATABASE_URL")
    if external:
        yield external
        return
    folder = Path(tempfile.mkdtemp(prefix="sigma-test-"))
    embedded = start_embedded(folder)
    try:
        yield embedded.url
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def create_database(server_url: str) -> str:
    name = f"sigma_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test session."""
    url = await create_database(server_url)
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, DEFAULT_MIGRATIONS_DIR)
    finally:
        await conn.close()
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The tests' own pool, for arranging and inspecting rows directly."""
    pool = await create_pool(database_url, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def server(database_url: str) -> AsyncIterator[RunningServer]:
    """The service under test, with its own pool, on a free loopback port."""
    pool = await create_pool(database_url, max_size=10)
    # No reconciliation passes: this server has no exchange to talk to.
    running = await start_server(pool, "127.0.0.1:0", Settings(reconcile_interval_s=3600))
    yield running
    await running.stop(grace=1)
    await pool.close()


@pytest.fixture(scope="session")
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> Stub:
    return Stub(channel)


@pytest.fixture
async def clean_db(db: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The tests' pool, after emptying every table; afterwards, the audit and history the test
    left are scanned for secrets."""
    async with db.acquire() as conn, conn.transaction():
        # The audit and history tables refuse TRUNCATE by trigger; the tests' superuser may bypass triggers.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "TRUNCATE decision_logs, execution_logs, execution_events, execution_config_audit, signer_nonces,"
            " decision_stats, decision_gate_failures, decision_gate_stats, decision_gate_combinations,"
            " decision_close_stats, decision_close_summaries"
        )
    # Back to a new database's config: execution disabled, dry run, the plan's limits.
    await db.execute(
        """
        UPDATE execution_config SET enabled = DEFAULT, hl_enabled = DEFAULT, dry_run = DEFAULT,
            hl_max_leverage = DEFAULT, hl_max_position_pct = DEFAULT, hl_max_exposure_pct = DEFAULT,
            hl_slippage_pct = DEFAULT, max_signal_age_s = DEFAULT, max_price_drift_pct = DEFAULT
        """
    )
    yield db
    rows = await db.fetch(
        """
        SELECT concat_ws(' ', changed_by, note, field, old_value, new_value) FROM execution_config_audit
        UNION ALL SELECT concat_ws(' ', actor, reason, error_message, db_user) FROM execution_events
        UNION ALL SELECT concat_ws(' ', requested_by, changed_by, error_message) FROM execution_logs
        UNION ALL SELECT concat_ws(' ', request_id, reasoning) FROM decision_logs
        """
    )
    scan([row[0] for row in rows], "an audit or history row")


@pytest.fixture
async def api(stub: Stub, clean_db: asyncpg.Pool) -> Stub:
    """A stub of the running service, over empty tables."""
    return stub
