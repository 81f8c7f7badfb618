"""The pool's reset on release: skipped for plain calls, kept after session state (advisory locks)."""

from __future__ import annotations

import asyncpg

from sigma_grpc.storage.pool import Database, create_pool

LOCK = 424242


async def _holder_of_lock(admin: asyncpg.Pool) -> int | None:
    pid: int | None = await admin.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted", LOCK
    )
    return pid


async def test_a_connection_that_took_a_session_lock_is_reset_on_release(
    database_url: str, db: asyncpg.Pool
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with Database(pool).connection() as conn:
            conn.mark_session_state()
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK)
            # Left locked, as when the holder is cancelled before it can unlock.
        assert await _holder_of_lock(db) is None
    finally:
        await pool.close()


async def test_plain_calls_return_their_connection_without_a_reset_round_trip(
    database_url: str, db: asyncpg.Pool
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        database = Database(pool)
        async with database.connection() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK)
        # No reset query ran (it would have released the lock)...
        assert await _holder_of_lock(db) == backend
        # ...and the one connection is handed out again as it was.
        async with database.connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)
    finally:
        await pool.close()
