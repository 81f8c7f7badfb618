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
    Reason.DRY_RUN_REQUIRED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.AGENT_WITHOUT_ACCOUNT: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.SIGNER_ACCOUNT_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.EXCHANGE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.DATABASE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.NOT_AUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.ROLE_NOT_ALLOWED: grpc.StatusCode.PERMISSION_DENIED,
}
_unmapped = set(Reason) - REASON_CODES.keys()
if _unmapped:
    raise RuntimeError(f"reasons without a gRPC code: {sorted(_unmapped)}")


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


# gRPC clients refuse trailing metadata beyond 8 KiB (with a rising probability) to 16 KiB
# (always), answering RESOURCE_EXHAUSTED in place of the error. The status travels twice in
# them: the message in grpc-message (percent-encoded) and the whole Status in
# grpc-status-details-bin (base64). Whatever the request held, both stay well inside.
MAX_MESSAGE_BYTES = 1024  # grpc-message, as encoded on the wire
MAX_DETAILS_BYTES = 3072  # the serialized Status (about 4 KiB in base64)
MAX_VIOLATION_CHARS = 256  # a field path or description, which may echo the request


def _wire_length(text: str) -> int:
    """The length of `text` in grpc-message: printable ASCII as is, every other byte as %XX."""
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in text.encode())


def _clip(text: str, limit: int) -> str:
    """`text`, or as much of it as fits `limit` bytes on the wire followed by "…"."""
    if _wire_length(text) <= limit:
        return text
    room, kept = limit - _wire_length("…"), []
    for char in text:
        room -= _wire_length(char)
        if room < 0:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _violations(
    error: InvalidArgument, budget: int
) -> tuple[list[error_details_pb2.BadRequest.FieldViolation], int]:
    """As many of the error's violations (each clipped) as fit `budget` serialized bytes; and how many."""
    listed: list[error_details_pb2.BadRequest.FieldViolation] = []
    size = 0
    for violation in error.violations:
        item = error_details_pb2.BadRequest.FieldViolation(
            field=violation.field[:MAX_VIOLATION_CHARS],
            description=_clip(violation.description, MAX_VIOLATION_CHARS),
        )
        cost = item.ByteSize() + 4  # its tag and length prefix inside BadRequest
        if size + cost > budget:
            break
        listed.append(item)
        size += cost
    return listed, len(listed)


def status_message(error: DomainError) -> status_pb2.Status:
    """The google.rpc.Status for `error`: its code, message and details, bounded as the wire needs."""
    code = REASON_CODES[error.reason]
    info = _pack(error_details_pb2.ErrorInfo(reason=error.reason.value, domain=ERROR_DOMAIN))
    details = [info]
    message = error.message
    if isinstance(error, InvalidArgument):
        listed, count = _violations(error, MAX_DETAILS_BYTES - MAX_MESSAGE_BYTES - info.ByteSize() - 64)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=listed)))
        if count < len(error.violations):
            message = (
                f"invalid request ({len(error.violations)} violations, the first {count} in the details)"
            )
            message += ": " + "; ".join(f"{v.field}: {v.description}" for v in error.violations)
    return status_pb2.Status(code=code.value[0], message=_clip(message, MAX_MESSAGE_BYTES), details=details)


def to_status(error: DomainError) -> grpc.Status:
    status: grpc.Status = rpc_status.to_status(status_message(error))
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
            log.debug(
                "%s answered %s (%s): %s", method.__name__, status.code.name, error.reason, error.message
            )
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception:
            log.exception("unexpected error in %s", method.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper
