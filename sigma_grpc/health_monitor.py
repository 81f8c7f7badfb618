"""Health that follows the database: NOT_SERVING while it cannot be reached, SERVING again when it answers.

Two pieces, both wired by `serve`:

- `StartupGate`, a server interceptor for the time between the gRPC port opening
  and the database being reachable and migrated: sigma.v1 calls are answered
  UNAVAILABLE (DATABASE_UNAVAILABLE, retrying is safe) instead of touching a
  schema that may not exist yet, and health checks of the server ("") and of each
  sigma.v1 service answer NOT_SERVING, so a probe never sees SERVING too early.
- `DatabaseMonitor`, which pings the database (`SELECT 1`, bounded) on a
  connection of its own, so a saturated pool never looks like a lost database,
  and sets grpc.health.v1 accordingly. Only changes are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2

from sigma_grpc.api.errors import to_status
from sigma_grpc.domain.errors import DomainError, Reason

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

log = logging.getLogger(__name__)

# How often the database is pinged, and how long one ping (connecting included) may take.
PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 2.0

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def set_health(servicer: health.aio.HealthServicer, names: Sequence[str], status: int) -> None:
    """The status of the whole server ("") and of each service in `names`."""
    for name in ("", *names):
        await servicer.set(name, status)


class StartupGate(grpc.aio.ServerInterceptor):
    """Holds sigma.v1 calls off (UNAVAILABLE) and health at NOT_SERVING until `open()`."""

    def __init__(self, service_names: Sequence[str]) -> None:
        self._services = frozenset(service_names)
        self._health_names = frozenset(("", *service_names))
        self._open = False

    def open(self) -> None:
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if self._open or handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner: Any = handler.unary_unary  # a coroutine function on an aio server
        if method == _HEALTH_CHECK:

            async def check(request: health_pb2.HealthCheckRequest, context: Any) -> Any:
                if not self._open and request.service in self._health_names:
                    return health_pb2.HealthCheckResponse(status=NOT_SERVING)
                return await inner(request, context)

            wrapped: Any = check
        elif method.lstrip("/").split("/", 1)[0] in self._services:

            async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                if not self._open:
                    status = to_status(
                        DomainError(
                            Reason.DATABASE_UNAVAILABLE,
                            "the database is not reachable yet (the service is starting); retrying is safe",
                        )
                    )
                    await context.abort(status.code, status.details, status.trailing_metadata)
                return await inner(request, context)

            wrapped = refuse
        else:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class DatabaseMonitor:
    """Pings the database every `interval_s` and keeps grpc.health.v1 in step with the answers."""

    def __init__(
        self,
        url: str,
        servicer: health.aio.HealthServicer,
        service_names: Sequence[str],
        *,
        interval_s: float = PING_INTERVAL_S,
        timeout_s: float = PING_TIMEOUT_S,
        pool: asyncpg.Pool | None = None,
    ) -> None:
        """`pool`: the service's pool, whose connections are replaced when the database is back."""
        self._url = url
        self._pool = pool
        self._servicer = servicer
        self._names = tuple(service_names)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._reachable: bool | None = None  # None: not pinged yet
        self._since = time.monotonic()

    @property
    def reachable(self) -> bool | None:
        return self._reachable

    def start(self) -> None:
        """Ping now, then every interval, until `stop()`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="database-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._drop_connection()

    async def _run(self) -> None:
        while True:
            error = await self.ping()
            await self._record(error)
            await asyncio.sleep(self._interval_s)

    async def ping(self) -> BaseException | None:
        """None when the database answered `SELECT 1` in time, otherwise what went wrong."""
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._conn is None or self._conn.is_closed():
                    self._drop_connection()
                    self._conn = await asyncpg.connect(self._url, timeout=self._timeout_s)
                await self._conn.fetchval("SELECT 1")
        except Exception as error:
            # Whatever the reason (refused, lost, timed out, refused by the server), start afresh.
            self._drop_connection()
            return error
        return None

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()  # never waits on a database that may not answer
            self._conn = None

    async def _record(self, error: BaseException | None) -> None:
        reachable = error is None
        if reachable == self._reachable:
            return
        now = time.monotonic()
        if reachable:
            if self._reachable is None:
                log.info("the database answers: health SERVING")
            else:
                log.info("the database answers again after %.1f s: health SERVING", now - self._since)
        else:
            assert error is not None
            log.warning(
                "the database cannot be reached (%s): health NOT_SERVING until it answers again",
                _describe(error),
            )
        if reachable and self._reachable is False and self._pool is not None:
            # Pooled connections from before the outage may be dead without knowing it yet
            # (a partition sends no reset): each is replaced at its next acquire or release.
            await self._pool.expire_connections()
        self._reachable, self._since = reachable, now
        await set_health(self._servicer, self._names, SERVING if reachable else NOT_SERVING)
