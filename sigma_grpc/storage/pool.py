"""The asyncpg connection pool, and the one place that bounds and classifies database calls.

Every query goes through `Database` (or a `Connection` it lends): pool acquires,
statements, BEGIN/COMMIT and the release are capped by the current call's
deadline (see `sigma_grpc.deadline`), and a lost connection, an unreachable
server, a pool with no free connection in time, or a statement that ran out of
time becomes a DomainError with reason DATABASE_UNAVAILABLE, which clients may
retry. A write that fails this way has either committed completely or not at
all: a statement that ran out of time is cancelled on the server before the
answer goes out (asyncpg's cancel request, awaited within what is left of the
deadline), and a connection that was lost, or whose cancel could not get
through, is terminated rather than handed back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import asyncpg
import orjson

from sigma_grpc import deadline
from sigma_grpc.domain.errors import DomainError, Reason

# The longest any statement may run when no caller's deadline is shorter.
STATEMENT_TIMEOUT_S = 30.0

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # lost or refused connections (class 08)
    # A deadlock or serialization failure (class 40) rolled the statement back whole.
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.OperatorInterventionError,  # server shutting down or starting, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    OSError,  # connection refused, socket gone
    TimeoutError,  # pool acquire or statement past its time
)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB columns travel as Python lists and dicts; orjson decodes a page's gates
    # and risk checks several times faster than the json module.
    await conn.set_type_codec("jsonb", encoder=_json_text, decoder=orjson.loads, schema="pg_catalog")


class PooledConnection(asyncpg.Connection):
    """A connection that skips asyncpg's reset query on release unless it took session state.

    asyncpg resets every released connection with `pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`: a second round trip for each call,
    measured at a third of a short call's cost. The service takes no session
    state (no SET, LISTEN or cursors; transactions are rolled back by asyncpg
    either way) except the session advisory locks around executions, which
    call `mark_session_state()` so that their connection still gets the full
    reset, should the unlock itself never run.
    """

    _session_state = False

    def mark_session_state(self) -> None:
        self._session_state = True

    def get_reset_query(self) -> str:
        if not self._session_state:
            return ""
        self._session_state = False
        query: str = super().get_reset_query()
        return query


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool of PooledConnections: session settings belong on a connection of their own."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=STATEMENT_TIMEOUT_S,
        connection_class=PooledConnection,
        # What the SQL is written for, whatever the server's or role's defaults: windows
        # of whole days in UTC, and READ COMMITTED unless a transaction asks for more.
        server_settings={"TimeZone": "UTC", "default_transaction_isolation": "read committed"},
    )
    assert pool is not None
    return pool


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database could not be reached or answer in time."""
    if isinstance(error, asyncpg.InterfaceError):
        # Raised for a connection closed under us (and for misuse, which stays a bug).
        return "closed" in str(error)
    return isinstance(error, _UNAVAILABLE)


def _unavailable(error: Exception) -> DomainError:
    return DomainError(
        Reason.DATABASE_UNAVAILABLE, f"the database is unavailable ({type(error).__name__}); retrying is safe"
    )


def _timeout() -> float:
    return deadline.time_left(STATEMENT_TIMEOUT_S)


_ISOLATION = {"read_committed": "READ COMMITTED", "repeatable_read": "REPEATABLE READ"}


class Connection:
    """A pooled connection whose statements are bounded and classified.

    `failure` says how one was not: "timed_out" (the statement is being
    cancelled; the connection may be reused) or "lost" (terminate it).
    """

    def __init__(self, raw: asyncpg.pool.PoolConnectionProxy) -> None:
        self._raw = raw
        self.failure: Literal["timed_out", "lost"] | None = None

    @contextlib.contextmanager
    def _classified(self) -> Iterator[None]:
        try:
            yield
        except DomainError:
            raise
        except Exception as error:
            if is_unavailable(error):
                if not isinstance(error, asyncpg.exceptions.TransactionRollbackError):
                    # A deadlock or serialization failure leaves the connection as good as it was.
                    cancelled = isinstance(error, TimeoutError | asyncpg.QueryCanceledError)
                    self.failure = "timed_out" if cancelled else "lost"
                raise _unavailable(error) from error
            raise

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, isolation: Literal["read_committed", "repeatable_read"] | None = None, readonly: bool = False
    ) -> AsyncIterator[None]:
        """A transaction whose BEGIN and COMMIT are bounded like any statement (asyncpg's are not)."""
        begin = "BEGIN"
        if isolation is not None:
            begin += f" ISOLATION LEVEL {_ISOLATION[isolation]}"
        if readonly:
            begin += " READ ONLY"
        await self.execute(begin)
        try:
            yield
        except BaseException:
            if self.failure is None:
                # The body's error is the one to report; a failed ROLLBACK marks the
                # connection, and the pool's reset (or termination) ends the transaction.
                with contextlib.suppress(DomainError):
                    await self.execute("ROLLBACK")
            raise
        await self.execute("COMMIT")

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with self._classified():
            rows: list[asyncpg.Record] = await self._raw.fetch(sql, *args, timeout=_timeout())
            return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with self._classified():
            return await self._raw.fetchrow(sql, *args, timeout=_timeout())

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with self._classified():
            return await self._raw.fetchval(sql, *args, timeout=_timeout())

    async def execute(self, sql: str, *args: Any) -> str:
        with self._classified():
            status: str = await self._raw.execute(sql, *args, timeout=_timeout())
            return status

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with self._classified():
            await self._raw.executemany(sql, args, timeout=_timeout())

    def mark_session_state(self) -> None:
        """Say that this connection holds session state (an advisory lock): reset it fully on release."""
        mark = getattr(self._raw, "mark_session_state", None)
        if mark is not None:  # a pool of plain asyncpg connections resets them fully anyway
            mark()


class Database:
    """The pool, lending bounded and classified connections."""

    def __init__(self, pool: asyncpg.Pool, *, on_acquire: Callable[[float], None] | None = None) -> None:
        """`on_acquire`: told how many seconds each acquire waited for a connection (metrics)."""
        self.pool = pool
        self._on_acquire = on_acquire

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        started = time.perf_counter()
        try:
            raw = await self.pool.acquire(timeout=_timeout())
            if self._on_acquire is not None:
                self._on_acquire(time.perf_counter() - started)
        except Exception as error:
            if is_unavailable(error):
                raise _unavailable(error) from error
            raise
        conn = Connection(raw)
        try:
            yield conn
        finally:
            if conn.failure == "lost":
                # The pool replaces it; release then returns at once. When asyncpg saw the
                # connection close first, it has already taken it back and refuses the call.
                with contextlib.suppress(asyncpg.InterfaceError):
                    raw.terminate()
            try:
                # Waits for a timed-out statement's cancellation, then resets; asyncpg
                # terminates the connection when that does not finish in time.
                await self.pool.release(raw, timeout=deadline.time_left(STATEMENT_TIMEOUT_S, cleanup=True))
            except Exception as error:
                if not is_unavailable(error):
                    raise

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
