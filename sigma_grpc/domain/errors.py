"""Domain errors. The API layer maps each reason to one gRPC status, in one place."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Why a request failed: sigma.v1.ErrorReason without its prefix (errors.proto documents each).

    Clients switch on these names, so they never change; tests check that this
    list and the contract's enum are the same.
    """

    VALIDATION_FAILED = "VALIDATION_FAILED"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105 (a reason code, not a secret)
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    DECISION_NOT_FOUND = "DECISION_NOT_FOUND"
    EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"
    NOT_A_SIGNAL = "NOT_A_SIGNAL"
    OUTCOME_ALREADY_RECORDED = "OUTCOME_ALREADY_RECORDED"
    NOT_EXECUTABLE = "NOT_EXECUTABLE"
    EXECUTION_DISABLED = "EXECUTION_DISABLED"
    NO_SIGNER = "NO_SIGNER"
    AGENT_WITHOUT_ACCOUNT = "AGENT_WITHOUT_ACCOUNT"
    EXCHANGE_UNAVAILABLE = "EXCHANGE_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    SIGNER_ACCOUNT_MISMATCH = "SIGNER_ACCOUNT_MISMATCH"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"
    DRY_RUN_REQUIRED = "DRY_RUN_REQUIRED"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field, named by its proto path (`gates[3].name`)."""

    field: str
    description: str


class DomainError(Exception):
    """An error a request can cause (or, for the *_UNAVAILABLE reasons, meet): a reason and a message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class InvalidArgument(DomainError):
    """The request itself is wrong; `violations` lists every problem found."""

    def __init__(self, violations: list[FieldViolation], reason: Reason = Reason.VALIDATION_FAILED) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(reason, f"invalid request: {summary}")
