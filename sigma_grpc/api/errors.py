"""The one place where errors become gRPC statuses.

Every domain error carries a Reason; each Reason has exactly one gRPC code
(REASON_CODES, checked complete at import, so a new Reason without a code fails
every test). The status carries a google.rpc.ErrorInfo (the reason, domain
"sigma.v1") and, for INVALID_ARGUMENT, a google.rpc.BadRequest listing every
field violation. Anything else is a bug of ours: logged with its traceback,
answered as INTERNAL without details.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sigma_grpc import deadline
from sigma_grpc.domain.errors import DomainError, InvalidArgument, Reason

log = logging.getLogger(__name__)

ERROR_DOMAIN = "sigma.v1"

REASON_CODES: dict[Reason, grpc.StatusCode] = {
    Reason.VALIDATION_FAILED: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_PAGE_TOKEN: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.REQUEST_ID_REUSED: grpc.StatusCode.ALREADY_EXISTS,
    Reason.DECISION_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.EXECUTION_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.NOT_A_SIGNAL: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.OUTCOME_ALREADY_RECORDED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_EXECUTABLE: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.EXECUTION_DISABLED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NO_SIGNER: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.AGENT_WITHOUT_ACCOUNT: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.SIGNER_ACCOUNT_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.EXCHANGE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.DATABASE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
_unmapped = set(Reason) - REASON_CODES.keys()
if _unmapped:
    raise RuntimeError(f"reasons without a gRPC code: {sorted(_unmapped)}")


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status(error: DomainError) -> grpc.Status:
    code = REASON_CODES[error.reason]
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason.value, domain=ERROR_DOMAIN))]
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
        status_pb2.Status(code=code.value[0], message=error.message, details=details)
    )
    return status


Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Method = Callable[[Servicer, Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[Response]]


def rpc(method: Method[Servicer, Request, Response]) -> Method[Servicer, Request, Response]:
    """Wrap a servicer method: its storage waits end before the call's deadline, errors leave as statuses."""

    @functools.wraps(method)
    async def wrapper(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext[Request, Response]
    ) -> Response:
        try:
            with deadline.bounded_by(context.time_remaining()):
                return await method(self, request, context)
        except DomainError as error:
            status = to_status(error)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception:
            log.exception("unexpected error in %s", method.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper
