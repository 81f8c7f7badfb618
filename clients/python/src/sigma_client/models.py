"""Plain-Python inputs of the client: enums by name, gates and risk checks as small dataclasses.

Every enum is a `StrEnum`, so `Direction.LONG == "long"`; the client methods take
the enum or its string value (case-insensitive), and also the generated
protobuf number (`decision_service_pb2.DIRECTION_LONG`) for callers that
already hold one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

import grpc.aio

__all__ = [
    "BucketWidth",
    "DecisionFields",
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


class BucketWidth(enum.StrEnum):
    """sigma.v1.BucketWidth: the width of get_signal_quality's time buckets, in UTC."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # from Monday 00:00 UTC


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


class _RequiredDecisionFields(TypedDict):
    symbol: str
    direction: Direction | str | int
    decision_type: DecisionType | str | int
    trader_count: int
    agreement_pct: float
    effective_k: float


# Two classes rather than Required[...]: with postponed annotations Python 3.11's TypedDict cannot
# see Required, so __required_keys__ (which the batcher checks against) would be wrong.
class DecisionFields(_RequiredDecisionFields, total=False):
    """log_decision's per-decision keyword arguments, as one mapping: an item of `log_decisions`,
    and the `fields` of a decision the batcher holds (replay it with `log_decision(**fields)`)."""

    gates: Sequence[Gate | Mapping[str, Any]]
    risk_checks: Sequence[RiskCheck | Mapping[str, Any]]
    avg_confidence: float | None
    ev_estimate: float | None
    price_at_decision: Decimal | str | float | int | None
    decided_at: datetime | None
    request_id: str | None
