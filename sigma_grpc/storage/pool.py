"""The asyncpg connection pool, and the one place that bounds and classifies database calls.

Every query goes through `Database` (or a `Connection` it lends): pool acquires
and statements are capped by the current call's deadline (see
`sigma_grpc.deadline`), and a lost connection, an unreachable server, a pool
with no free connection in time, or a statement that ran out of time becomes a
DomainError with reason DATABASE_UNAVAILABLE, which clients may retry. A write
that fails this way has either committed completely or not at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import asyncpg

from sigma_grpc import deadline
from sigma_grpc.domain.errors import DomainError, Reason

# The longest any statement may run when no caller's deadline is shorter.
STATEMENT_TIMEOUT_S = 30.0

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # lost or refused connections (class 08)
    asyncpg.exceptions.OperatorInterventionError,  # server shutting down or starting, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    OSError,  # connection refused, socket gone
    TimeoutError,  # pool acquire or statement past its time
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB columns travel as Python lists and dicts.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=STATEMENT_TIMEOUT_S
    )
    assert pool is not None
    return pool


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database could not be reached or answer in time."""
    if isinstance(error, asyncpg.InterfaceError):
        # Raised for a connection closed under us (and for misuse, which stays a bug).
        return "closed" in str(error)
    return isinstance(error, _UNAVAILABLE)


@contextlib.contextmanager
def _classified() -> Iterator[None]:
    try:
        yield
    except DomainError:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise DomainError(
                Reason.DATABASE_UNAVAILABLE,
                f"the database is unavailable ({type(error).__name__}); retrying is safe",
            ) from error
        raise


def _timeout() -> float:
    return deadline.time_left(STATEMENT_TIMEOUT_S)


class Connection:
    """A pooled connection whose statements are bounded and classified like `Database`'s."""

    def __init__(self, raw: asyncpg.pool.PoolConnectionProxy) -> None:
        self._raw = raw

    @contextlib.asynccontextmanager
    async def transaction(self, **options: Any) -> AsyncIterator[None]:
        """A transaction; BEGIN and COMMIT are classified too (a COMMIT on a lost connection)."""
        # The body is storage code whose own statements are already classified.
        with _classified():
            async with self._raw.transaction(**options):
                yield

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with _classified():
            rows: list[asyncpg.Record] = await self._raw.fetch(sql, *args, timeout=_timeout())
            return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with _classified():
            return await self._raw.fetchrow(sql, *args, timeout=_timeout())

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with _classified():
            return await self._raw.fetchval(sql, *args, timeout=_timeout())

    async def execute(self, sql: str, *args: Any) -> str:
        with _classified():
            status: str = await self._raw.execute(sql, *args, timeout=_timeout())
            return status

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with _classified():
            await self._raw.executemany(sql, args, timeout=_timeout())


class Database:
    """The pool, lending bounded and classified connections."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        with _classified():
            raw = await self.pool.acquire(timeout=_timeout())
        try:
            yield Connection(raw)
        finally:
            with _classified():
                await self.pool.release(raw)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)
