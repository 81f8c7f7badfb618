"""Typed errors of sigma.v1 calls, decoded from the google.rpc.Status the server sends.

Every error of a call is a `SigmaError` (or a subclass chosen by its gRPC status
code) carrying:

- `code`: the grpc.StatusCode;
- `reason`: the google.rpc.ErrorInfo reason, one of `ErrorReason` ("REQUEST_ID_REUSED"),
  or None when the server sent none (INTERNAL, or an error raised by gRPC itself such as a
  refused connection or a deadline);
- `message`: the status message, for people (switch on `reason`, never on the text);
- `field_violations`: the google.rpc.BadRequest violations as (field, description) pairs;
- `attempts`: how many attempts the client made before giving up;
- `request_id`: for log_decision, and for each decision of log_decisions and the batcher, the
  idempotency key the call used, so it can be retried later.

A reason this client does not know (added to the API later) is kept as its string; handle
it by its status code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AlreadyExistsError",
    "DeadlineExceededError",
    "ErrorReason",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "SigmaError",
    "UnauthenticatedError",
    "UnavailableError",
]

ERROR_DOMAIN = "sigma.v1"


class ErrorReason(enum.StrEnum):
    """sigma.v1.ErrorReason without its `ERROR_REASON_` prefix: the `reason` strings the server sends.

    A StrEnum, so `error.reason == ErrorReason.REQUEST_ID_REUSED` and
    `error.reason == "REQUEST_ID_REUSED"` both work.
    """

    VALIDATION_FAILED = "VALIDATION_FAILED"  # INVALID_ARGUMENT; field_violations lists every problem
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105  # INVALID_ARGUMENT; restart from page 1
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"  # ALREADY_EXISTS; the id was used for other content
    DECISION_NOT_FOUND = "DECISION_NOT_FOUND"  # NOT_FOUND
    EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"  # NOT_FOUND
    NOT_A_SIGNAL = "NOT_A_SIGNAL"  # FAILED_PRECONDITION (RecordOutcome)
    OUTCOME_ALREADY_RECORDED = "OUTCOME_ALREADY_RECORDED"  # FAILED_PRECONDITION (RecordOutcome)
    NOT_EXECUTABLE = "NOT_EXECUTABLE"  # FAILED_PRECONDITION (ExecuteSignal)
    EXECUTION_DISABLED = "EXECUTION_DISABLED"  # FAILED_PRECONDITION (ExecuteSignal)
    NO_SIGNER = "NO_SIGNER"  # FAILED_PRECONDITION (ExecuteSignal)
    DRY_RUN_REQUIRED = "DRY_RUN_REQUIRED"  # FAILED_PRECONDITION (ExecuteSignal dry_run_only, live config)
    AGENT_WITHOUT_ACCOUNT = "AGENT_WITHOUT_ACCOUNT"  # FAILED_PRECONDITION (ExecuteSignal)
    EXCHANGE_UNAVAILABLE = "EXCHANGE_UNAVAILABLE"  # UNAVAILABLE; retried by the client
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"  # UNAVAILABLE; retried by the client
    SIGNER_ACCOUNT_MISMATCH = "SIGNER_ACCOUNT_MISMATCH"  # FAILED_PRECONDITION (ExecuteSignal)
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"  # UNAUTHENTICATED; no token, or one the server does not know
    ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"  # PERMISSION_DENIED; the token's role may not call this RPC


class FieldViolation(NamedTuple):
    """One invalid field, named by its proto path (`agreement_pct`, `gates[3].name`)."""

    field: str
    description: str


class SigmaError(Exception):
    """A sigma.v1 call failed; subclasses name the common status codes."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        attempts: int = 1,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.field_violations = field_violations
        self.attempts = attempts
        self.request_id = request_id

    @property
    def violations(self) -> dict[str, str]:
        """The field violations as {field: description}."""
        return dict(self.field_violations)

    def __str__(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.code.name}{reason}: {self.message}{tries}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, field_violations={self.field_violations!r}, "
            f"attempts={self.attempts}, request_id={self.request_id!r})"
        )


class InvalidArgumentError(SigmaError):
    """INVALID_ARGUMENT: the request breaks the contract (VALIDATION_FAILED, INVALID_PAGE_TOKEN)."""


class NotFoundError(SigmaError):
    """NOT_FOUND: no decision (DECISION_NOT_FOUND) or execution (EXECUTION_NOT_FOUND) has that id."""


class AlreadyExistsError(SigmaError):
    """ALREADY_EXISTS: LogDecision's request_id was used for other content (REQUEST_ID_REUSED)."""


class FailedPreconditionError(SigmaError):
    """FAILED_PRECONDITION: the request is valid but the state refuses it (NOT_A_SIGNAL, ...)."""


class UnavailableError(SigmaError):
    """UNAVAILABLE: the server, its database or the exchange could not be reached; safe to retry."""


class DeadlineExceededError(SigmaError):
    """DEADLINE_EXCEEDED: the call's overall deadline passed before an answer."""


class UnauthenticatedError(SigmaError):
    """UNAUTHENTICATED: missing or invalid credentials."""


class PermissionDeniedError(SigmaError):
    """PERMISSION_DENIED: the credentials may not make this call."""


class InternalError(SigmaError):
    """INTERNAL: a bug of the server; it carries no details."""


_CLASSES: dict[grpc.StatusCode, type[SigmaError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status of the `grpc-status-details-bin` trailer, when it matches the call."""
    try:
        found: status_pb2.Status | None = rpc_status.from_call(error)
    except (ValueError, DecodeError):
        return None  # details that contradict the status (a proxy rewrote it) or are damaged: ignore
    return found


def _typed(
    code: grpc.StatusCode,
    message: str,
    details: Iterable[any_pb2.Any],
    *,
    attempts: int,
    request_id: str | None,
) -> SigmaError:
    reason: str | None = None
    violations: list[FieldViolation] = []
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            # Another service or a proxy may add its own ErrorInfo: only sigma.v1's names an ErrorReason.
            if info.domain == ERROR_DOMAIN:
                reason = str(info.reason) or None
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    kind = _CLASSES.get(code, SigmaError)
    return kind(
        code,
        message,
        reason=reason,
        field_violations=tuple(violations),
        attempts=attempts,
        request_id=request_id,
    )


def from_rpc_error(
    error: grpc.aio.AioRpcError, *, attempts: int = 1, request_id: str | None = None
) -> SigmaError:
    """The typed error of a failed call."""
    status = _rich_status(error)
    return _typed(
        error.code(),
        error.details() or "",
        status.details if status is not None else (),
        attempts=attempts,
        request_id=request_id,
    )


_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def from_status(status: status_pb2.Status, *, attempts: int = 1, request_id: str | None = None) -> SigmaError:
    """The typed error of a google.rpc.Status sent inside a response (a refused decision of
    LogDecisions): the same class, reason and violations as the call would have failed with."""
    # A code this grpc version does not know is still an error: UNKNOWN, with the server's message.
    code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
    return _typed(code, status.message, status.details, attempts=attempts, request_id=request_id)
