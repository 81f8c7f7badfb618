"""The one place where errors become gRPC statuses.

Domain errors carry what the client did wrong; they become their status with a
google.rpc.ErrorInfo (reason code, domain "sigma.v1") and, for INVALID_ARGUMENT,
a google.rpc.BadRequest listing every field violation. Anything else is a bug of
ours: logged with its traceback, answered as INTERNAL without details.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sigma_grpc.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

ERROR_DOMAIN = "sigma.v1"

_CODES: dict[type[DomainError], int] = {
    InvalidArgument: code_pb2.INVALID_ARGUMENT,
    NotFound: code_pb2.NOT_FOUND,
    FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    Unavailable: code_pb2.UNAVAILABLE,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status(error: DomainError) -> grpc.Status:
    code = next((c for kind, c in _CODES.items() if isinstance(error, kind)), code_pb2.FAILED_PRECONDITION)
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in error.violations
                    ]
                )
            )
        )
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(code=code, message=error.message, details=details)
    )
    return status


Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Method = Callable[[Servicer, Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[Response]]


def rpc(method: Method[Servicer, Request, Response]) -> Method[Servicer, Request, Response]:
    """Wrap a servicer method so every error leaves as the right status."""

    @functools.wraps(method)
    async def wrapper(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext[Request, Response]
    ) -> Response:
        try:
            return await method(self, request, context)
        except DomainError as error:
            status = to_status(error)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception:
            log.exception("unexpected error in %s", method.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper
