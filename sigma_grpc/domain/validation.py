"""Request validation: every rule of the decision log, with no I/O.

Each `validate_*` collects every violation (named by its proto path) and raises
one `InvalidArgument`, or returns the validated domain value. Numbers are
rounded here to the scale of their database columns, so storage never sees a
value it would have to reject or round.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sigma_grpc.domain.errors import FieldViolation, InvalidArgument
from sigma_grpc.domain.models import (
    DecisionFilter,
    DecisionType,
    Direction,
    Gate,
    ListQuery,
    NewDecision,
    Outcome,
    OutcomeFilter,
    RiskCheck,
    StatsQuery,
)
from sigma_grpc.domain.pagination import decode_page_token
from sigma_grpc.domain.reasoning import generate_reasoning

MAX_GATES = 64
MAX_RISK_CHECKS = 64
MAX_REQUEST_ID = 128
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_STATS_DAYS = 7
MAX_STATS_DAYS = 365
MAX_R_MULTIPLE = Decimal("9999.9999")
MAX_EFFECTIVE_K = Decimal("999.999")
# DECIMAL(20,8): 12 integer digits.
MAX_MONEY = Decimal(10) ** 12
# Clocks of hl-decide and this service may disagree a little.
CLOCK_SKEW = timedelta(seconds=60)

_SYMBOL = re.compile(r"[A-Za-z0-9]{1,16}")
_CHECK_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_UNSIGNED_DECIMAL = re.compile(r"[0-9]+(\.[0-9]{1,8})?")
_SIGNED_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,8})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_ZERO = Decimal(0)
_ONE = Decimal(1)
_SCALE_4 = Decimal("0.0001")
_SCALE_3 = Decimal("0.001")
_SCALE_8 = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class RawTimestamp:
    """A protobuf Timestamp's parts, before they are known to be a valid time."""

    seconds: int
    nanos: int


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """A LogDecision request as plain values; None means the field was unset."""

    symbol: str
    direction: Direction | None
    decision_type: DecisionType | None
    trader_count: int
    agreement_pct: float
    effective_k: float
    avg_confidence: float | None = None
    ev_estimate: float | None = None
    price_at_decision: str | None = None
    gates: tuple[Gate, ...] = ()
    risk_checks: tuple[RiskCheck, ...] = ()
    request_id: str | None = None
    decided_at: RawTimestamp | None = None


@dataclass(frozen=True, slots=True)
class ListInput:
    """A ListDecisions request as plain values; None means the field was unset."""

    symbol: str = ""
    decision_type: DecisionType | None = None
    direction: Direction | None = None
    outcome: OutcomeFilter | None = None
    start_time: RawTimestamp | None = None
    end_time: RawTimestamp | None = None
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    """A RecordOutcome request as plain values."""

    decision_id: str
    outcome_pnl: str
    outcome_r_multiple: float
    outcome_closed_at: RawTimestamp | None = None


@dataclass(slots=True)
class _Violations:
    items: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        self.items.append(FieldViolation(path, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def _quantize(value: float, scale: Decimal) -> Decimal:
    # repr gives the shortest string that round-trips the double: 0.1 stays 0.1.
    return Decimal(repr(value)).quantize(scale, rounding=ROUND_HALF_EVEN)


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _check_symbol(v: _Violations, path: str, symbol: str) -> None:
    if _has_control(symbol):
        v.add(path, "must not contain control characters")
    elif not _SYMBOL.fullmatch(symbol):
        v.add(path, "must be 1-16 ASCII letters or digits (e.g. BTC, kPEPE)")


def _check_double(v: _Violations, path: str, value: float, low: Decimal, high: Decimal) -> bool:
    """`value` is finite and within [low, high]; the bounds are Decimals so messages show them exactly."""
    if not math.isfinite(value):
        v.add(path, "must be a finite number (not NaN or Infinity)")
        return False
    if not float(low) <= value <= float(high):
        v.add(path, f"must be between {low} and {high}")
        return False
    return True


def _check_finite(v: _Violations, path: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        v.add(path, "must be a finite number (not NaN or Infinity)")


def _check_name(v: _Violations, path: str, name: str) -> None:
    if _has_control(name):
        v.add(path, "must not contain control characters")
    elif not _CHECK_NAME.fullmatch(name):
        v.add(path, "must be 1-64 characters of letters, digits and _.:-")


def parse_decimal(v: _Violations, path: str, text: str, *, signed: bool) -> Decimal | None:
    """A plain decimal string fitting DECIMAL(20,8), or None after recording why not."""
    pattern = _SIGNED_DECIMAL if signed else _UNSIGNED_DECIMAL
    if _has_control(text):
        v.add(path, "must not contain control characters")
        return None
    if not pattern.fullmatch(text):
        kind = "a signed" if signed else "a positive"
        v.add(path, f"must be {kind} plain decimal with at most 8 decimals (e.g. 97123.5)")
        return None
    value = Decimal(text)
    if abs(value) >= MAX_MONEY:
        v.add(path, "must have at most 12 integer digits")
        return None
    if not signed and value <= 0:
        v.add(path, "must be greater than 0")
        return None
    return value.quantize(_SCALE_8)


def parse_timestamp(v: _Violations, path: str, raw: RawTimestamp) -> datetime | None:
    """A timestamp within years 1-9999, truncated to microseconds (PostgreSQL's precision)."""
    if not 0 <= raw.nanos < 1_000_000_000:
        v.add(path, "nanos must be between 0 and 999999999")
        return None
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            seconds=raw.seconds, microseconds=raw.nanos // 1000
        )
    except OverflowError:
        moment = None
    if moment is None or not 1 <= moment.year <= 9999:
        v.add(path, "must be between years 1 and 9999")
        return None
    return moment


def parse_uuid(v: _Violations, path: str, text: str) -> uuid.UUID | None:
    try:
        if _has_control(text) or len(text) > 45:
            raise ValueError(text)
        return uuid.UUID(text)
    except ValueError:
        v.add(path, "must be a UUID such as 0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b")
        return None


def validate_uuid(path: str, text: str) -> uuid.UUID:
    v = _Violations()
    parsed = parse_uuid(v, path, text)
    v.raise_if_any()
    assert parsed is not None
    return parsed


def validate_decision(raw: DecisionInput, *, now: datetime) -> NewDecision:
    """Check a LogDecision request and build the decision to store, reasoning included."""
    v = _Violations()
    _check_symbol(v, "symbol", raw.symbol)
    if raw.direction is None:
        v.add("direction", "must be set (DIRECTION_LONG, DIRECTION_SHORT or DIRECTION_NONE)")
    if raw.decision_type is None:
        v.add("decision_type", "must be set (DECISION_TYPE_SIGNAL, DECISION_TYPE_SKIP or ...RISK_REJECT)")
    if raw.trader_count < 0:
        v.add("trader_count", "must be 0 or more")
    agreement_ok = _check_double(v, "agreement_pct", raw.agreement_pct, _ZERO, _ONE)
    effective_k_ok = _check_double(v, "effective_k", raw.effective_k, _ZERO, MAX_EFFECTIVE_K)
    if raw.avg_confidence is not None:
        _check_double(v, "avg_confidence", raw.avg_confidence, _ZERO, _ONE)
    if raw.ev_estimate is not None:
        _check_double(v, "ev_estimate", raw.ev_estimate, -MAX_R_MULTIPLE, MAX_R_MULTIPLE)
    price = None
    if raw.price_at_decision is not None:
        price = parse_decimal(v, "price_at_decision", raw.price_at_decision, signed=False)

    if len(raw.gates) > MAX_GATES:
        v.add("gates", f"must have at most {MAX_GATES} entries")
    for i, gate in enumerate(raw.gates):
        _check_name(v, f"gates[{i}].name", gate.name)
        _check_finite(v, f"gates[{i}].value", gate.value)
        _check_finite(v, f"gates[{i}].threshold", gate.threshold)
    if len(raw.risk_checks) > MAX_RISK_CHECKS:
        v.add("risk_checks", f"must have at most {MAX_RISK_CHECKS} entries")
    for i, check in enumerate(raw.risk_checks):
        _check_name(v, f"risk_checks[{i}].name", check.name)
        _check_finite(v, f"risk_checks[{i}].value", check.value)
        _check_finite(v, f"risk_checks[{i}].limit", check.limit)

    if raw.request_id is not None:
        rid = raw.request_id
        if not 1 <= len(rid) <= MAX_REQUEST_ID or not all(" " <= c <= "~" for c in rid):
            v.add("request_id", f"must be 1-{MAX_REQUEST_ID} printable ASCII characters")

    decided_at = None
    if raw.decided_at is not None:
        decided_at = parse_timestamp(v, "decided_at", raw.decided_at)
        if decided_at is not None and decided_at > now + CLOCK_SKEW:
            v.add("decided_at", "must not be in the future")

    if raw.decision_type is DecisionType.SIGNAL:
        if raw.direction is Direction.NONE:
            v.add("direction", "a SIGNAL needs DIRECTION_LONG or DIRECTION_SHORT")
        for i, gate in enumerate(raw.gates):
            if not gate.passed:
                v.add(f"gates[{i}].passed", "a SIGNAL needs every gate passed")
    elif raw.decision_type is DecisionType.SKIP:
        if not any(not g.passed for g in raw.gates):
            v.add("gates", "a SKIP needs at least one failed gate")
    elif raw.decision_type is DecisionType.RISK_REJECT and not any(not c.passed for c in raw.risk_checks):
        v.add("risk_checks", "a RISK_REJECT needs at least one failed risk check")

    v.raise_if_any()
    assert raw.direction is not None and raw.decision_type is not None
    assert agreement_ok and effective_k_ok
    agreement = _quantize(raw.agreement_pct, _SCALE_4)
    effective_k = _quantize(raw.effective_k, _SCALE_3)
    return NewDecision(
        symbol=raw.symbol,
        direction=raw.direction,
        decision_type=raw.decision_type,
        trader_count=raw.trader_count,
        agreement_pct=agreement,
        effective_k=effective_k,
        avg_confidence=None if raw.avg_confidence is None else _quantize(raw.avg_confidence, _SCALE_4),
        ev_estimate=None if raw.ev_estimate is None else _quantize(raw.ev_estimate, _SCALE_4),
        price_at_decision=price,
        gates=raw.gates,
        risk_checks=raw.risk_checks,
        reasoning=generate_reasoning(
            decision_type=raw.decision_type,
            symbol=raw.symbol,
            direction=raw.direction,
            trader_count=raw.trader_count,
            agreement_pct=float(agreement),
            effective_k=float(effective_k),
            gates=raw.gates,
            risk_checks=raw.risk_checks,
        ),
        request_id=raw.request_id,
        decided_at=decided_at,
    )


def validate_list(raw: ListInput) -> ListQuery:
    """Check a ListDecisions request, page token included."""
    v = _Violations()
    symbol = None
    if raw.symbol:
        _check_symbol(v, "symbol", raw.symbol)
        symbol = raw.symbol
    start = parse_timestamp(v, "start_time", raw.start_time) if raw.start_time else None
    end = parse_timestamp(v, "end_time", raw.end_time) if raw.end_time else None
    if start is not None and end is not None and end <= start:
        v.add("end_time", "must be after start_time")
    if raw.page_size < 0:
        v.add("page_size", "must not be negative (0 means the default, 50)")
    v.raise_if_any()
    decision_filter = DecisionFilter(
        symbol=symbol,
        decision_type=raw.decision_type,
        direction=raw.direction,
        outcome=raw.outcome,
        start_time=start,
        end_time=end,
    )
    cursor = decode_page_token(raw.page_token, decision_filter) if raw.page_token else None
    page_size = min(raw.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return ListQuery(filter=decision_filter, page_size=page_size, cursor=cursor)


def validate_stats(days: int | None, symbol: str | None) -> StatsQuery:
    v = _Violations()
    window = days or DEFAULT_STATS_DAYS
    if not 1 <= window <= MAX_STATS_DAYS:
        v.add("days", f"must be between 1 and {MAX_STATS_DAYS} (0 or unset means {DEFAULT_STATS_DAYS})")
    if symbol:
        _check_symbol(v, "symbol", symbol)
    v.raise_if_any()
    return StatsQuery(days=window, symbol=symbol or None)


def validate_outcome(raw: OutcomeInput, *, now: datetime) -> Outcome:
    """Check a RecordOutcome request's own fields (the decision's state is checked by the service)."""
    v = _Violations()
    decision_id = parse_uuid(v, "decision_id", raw.decision_id)
    pnl = None
    if not raw.outcome_pnl:
        v.add("outcome_pnl", "is required: a signed decimal such as -12.5")
    else:
        pnl = parse_decimal(v, "outcome_pnl", raw.outcome_pnl, signed=True)
    r_ok = _check_double(v, "outcome_r_multiple", raw.outcome_r_multiple, -MAX_R_MULTIPLE, MAX_R_MULTIPLE)
    closed_at = None
    if raw.outcome_closed_at is not None:
        closed_at = parse_timestamp(v, "outcome_closed_at", raw.outcome_closed_at)
        if closed_at is not None and closed_at > now + CLOCK_SKEW:
            v.add("outcome_closed_at", "must not be in the future")
    v.raise_if_any()
    assert decision_id is not None and pnl is not None and r_ok
    return Outcome(
        decision_id=decision_id,
        pnl=pnl,
        r_multiple=_quantize(raw.outcome_r_multiple, _SCALE_4),
        closed_at=closed_at,
    )
