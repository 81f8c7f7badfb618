"""Requests that are not the message they claim to be get INVALID_ARGUMENT with a reason, like any bad field.

grpc decodes a request before any handler runs, and a decode failure (bytes that
are no protobuf message, a string field that is not UTF-8) would otherwise leave
as UNKNOWN, naming a Python exception and carrying no ErrorInfo.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from sigma_grpc.api.errors import to_status
from sigma_grpc.domain.errors import FieldViolation, InvalidArgument

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


@dataclass(frozen=True, slots=True)
class _Undecodable:
    message_type: str
    problem: str


class UndecodableRequests(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        inner: Any = handler.unary_unary  # a coroutine function on an aio server
        # The deserializer is the request class's FromString.
        message_type = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
        name = message_type.full_name if message_type is not None else "request"

        def lenient_decode(data: bytes) -> Any:
            try:
                return decode(data)
            except DecodeError as error:
                return _Undecodable(name, str(error))

        async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if isinstance(request, _Undecodable):
                violation = FieldViolation("", f"is not a valid {request.message_type}: {request.problem}")
                status = to_status(InvalidArgument([violation]))
                await context.abort(status.code, status.details, status.trailing_metadata)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked, request_deserializer=lenient_decode, response_serializer=handler.response_serializer
        )
