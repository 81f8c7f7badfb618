"""Domain errors. The API layer maps each to one gRPC status, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field, named by its proto path (`gates[3].name`)."""

    field: str
    description: str


class DomainError(Exception):
    """Base of the errors a client's request can cause.

    `reason` is a stable UPPER_SNAKE code clients can switch on.
    """

    reason = "DOMAIN_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """The request itself is wrong; `violations` lists every problem found."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}")


class NotFound(DomainError):
    """The named resource does not exist."""

    reason = "NOT_FOUND"


class FailedPrecondition(DomainError):
    """The request is well-formed but the system's state does not allow it."""

    reason = "FAILED_PRECONDITION"


class Unavailable(DomainError):
    """A dependency (the exchange) could not be reached; nothing was written, retrying is safe."""

    reason = "UNAVAILABLE"
