"""Plain-Python inputs of the client: enums by name, gates and risk checks as small dataclasses.

Every enum is a `StrEnum`, so `Direction.LONG == "long"`; the client methods take
the enum or its string value (case-insensitive), and also the generated
protobuf number (`decision_service_pb2.DIRECTION_LONG`) for callers that
already hold one.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import grpc.aio

__all__ = [
    "DecisionType",
    "Direction",
    "ExecutionStatus",
    "Gate",
    "Metadata",
    "Outcome",
    "RiskCheck",
]

# Request metadata: ("authorization", "Bearer ...") pairs, or a grpc.aio.Metadata.
Metadata = grpc.aio.Metadata | Sequence[tuple[str, str | bytes]]


class Direction(enum.StrEnum):
    """sigma.v1.Direction: the side the consensus took."""

    LONG = "long"
    SHORT = "short"
    NONE = "none"  # SKIP and RISK_REJECT decisions only


class DecisionType(enum.StrEnum):
    """sigma.v1.DecisionType: what the signal engine decided."""

    SIGNAL = "signal"
    SKIP = "skip"
    RISK_REJECT = "risk_reject"


class Outcome(enum.StrEnum):
    """sigma.v1.Outcome: a filter of signals by the state of their outcome."""

    PENDING = "pending"
    CLOSED = "closed"
    WIN = "win"
    LOSS = "loss"


class ExecutionStatus(enum.StrEnum):
    """sigma.v1.ExecutionStatus: where an execution stands (a filter of list_executions)."""

    PENDING = "pending"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SIMULATED = "simulated"


@dataclass(frozen=True, slots=True)
class Gate:
    """The result of one consensus gate; `value` and `threshold` are optional."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class RiskCheck:
    """The result of one pre-trade risk check; `value` and `limit` are optional."""

    name: str
    passed: bool
    value: float | None = None
    limit: float | None = None
