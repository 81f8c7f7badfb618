"""Tracks unary calls still running, so a graceful stop can wait for them before closing the pool.

`grpc.aio.Server.stop(grace)` returns once the server considers every call
finished; a call whose client hung up counts as finished while its handler may
still be running. Waiting for the handler tasks themselves keeps the database
pool open until the last one is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    # Generic only in the type stubs.
    Handler = grpc.RpcMethodHandler[Any, Any]


class InFlightCalls(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: Any = handler.unary_unary  # a coroutine function on an aio server

        async def tracked(request: Any, context: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                return await inner(request, context)
            finally:
                self._tasks.discard(task)

        return grpc.unary_unary_rpc_method_handler(
            tracked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def wait(self, timeout: float | None) -> None:
        """Wait up to `timeout` seconds for the calls still running."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
