"""gRPC statuses as HTTP answers, the way grpc-gateway maps them.

The body is the google.rpc.Status in JSON (numeric `code`, `message`, `details`
with `@type`), so an HTTP client reads the same ErrorInfo reason and
BadRequest field violations a gRPC client does.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from sigma_grpc.domain.errors import Reason

# grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def _status_json(status: status_pb2.Status) -> dict[str, Any]:
    # `details` keep their @type; error_details_pb2 is imported, so ErrorInfo and BadRequest resolve.
    result: dict[str, Any] = json_format.MessageToDict(status, always_print_fields_with_no_presence=True)
    return result


def from_rpc_error(error: grpc.aio.AioRpcError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of a failed call."""
    code = error.code()
    status = None
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
    if status is None or status.code != code.value[0]:
        status = status_pb2.Status(code=code.value[0], message=error.details() or "")
    return HTTP_STATUS.get(code, 500), _status_json(status)


def bad_request(field: str, description: str) -> tuple[int, dict[str, Any]]:
    """A 400 for an HTTP request no RPC request can be made of, shaped like the service's own."""
    info, violations = any_pb2.Any(), any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=Reason.VALIDATION_FAILED.value, domain="sigma.v1"))
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    violations.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    message = f"invalid request: {field}: {description}" if field else f"invalid request: {description}"
    status = status_pb2.Status(
        code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=message, details=[info, violations]
    )
    return 400, _status_json(status)


def plain_error(code: grpc.StatusCode, message: str) -> tuple[int, dict[str, Any]]:
    """An error the gateway answers itself (no such route, method not allowed)."""
    return HTTP_STATUS.get(code, 500), _status_json(status_pb2.Status(code=code.value[0], message=message))


def too_large(limit: int) -> tuple[int, dict[str, Any]]:
    """A 413: the body is larger than the gateway accepts."""
    return 413, bad_request("", f"the body is larger than {limit} bytes")[1]


def not_json() -> tuple[int, dict[str, Any]]:
    """A 415: a body not declared as JSON (what a cross-site form or text/plain request would send)."""
    return 415, bad_request("", "the body must be sent as Content-Type: application/json")[1]
