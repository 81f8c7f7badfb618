"""Request validation: every rule of the decision log, with no I/O.

Each `validate_*` collects every violation (named by its proto path) and raises
one `InvalidArgument`, or returns the validated domain value. Numbers are
rounded here to the scale of their database columns, so storage never sees a
value it would have to reject or round. Writing the reasoning is not
validation: the service does it (domain/reasoning.py) once a decision is valid.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TypeVar

from sigma_grpc.domain.errors import FieldViolation, InvalidArgument
from sigma_grpc.domain.execution import ExecutionStatus
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
from sigma_grpc.domain.quality import (
    DEFAULT_AGREEMENT_EDGES,
    DEFAULT_EFFECTIVE_K_EDGES,
    DEFAULT_TOP_COMBINATIONS,
    DEFAULT_TRADER_COUNT_EDGES,
    MAX_EDGES,
    MAX_TOP_COMBINATIONS,
    BucketWidth,
    GateQuery,
    QualityQuery,
)

MAX_GATES = 64
MAX_RISK_CHECKS = 64
MAX_REQUEST_ID = 128
MAX_DECISION_IDS = 200
MAX_BATCH = 1000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_STATS_DAYS = 7
MAX_STATS_DAYS = 365
MAX_R_MULTIPLE = Decimal("9999.9999")
MAX_EFFECTIVE_K = Decimal("999.999")
# DECIMAL(20,8): 12 integer digits.
MAX_MONEY = Decimal(10) ** 12
# Clocks of hl-decide and this service may disagree a little. A decision's time
# may be a minute ahead (hl-decide replays buffers with its own clock); a close
# time only a few seconds (it is reported after the fact).
CLOCK_SKEW = timedelta(seconds=60)
OUTCOME_CLOCK_SKEW = timedelta(seconds=5)
# Gate and risk-check values and thresholds: any unit, but not absurd magnitudes.
MAX_CHECK_MAGNITUDE = 1e15

_SYMBOL = re.compile(r"[A-Za-z0-9]{1,16}")
_CHECK_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_UNSIGNED_DECIMAL = re.compile(r"[0-9]+(\.[0-9]{1,8})?")
_SIGNED_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,8})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

E = TypeVar("E", bound=enum.Enum)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)
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
class UnknownEnum:
    """An enum number this server does not know (from a newer or broken client)."""

    number: int


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """A LogDecision request as plain values; None means the field was unset."""

    symbol: str
    direction: Direction | UnknownEnum | None
    decision_type: DecisionType | UnknownEnum | None
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
    decision_type: DecisionType | UnknownEnum | None = None
    direction: Direction | UnknownEnum | None = None
    outcome: OutcomeFilter | UnknownEnum | None = None
    start_time: RawTimestamp | None = None
    end_time: RawTimestamp | None = None
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    """A RecordOutcome request as plain values."""

    decision_id: str
    outcome_pnl: str
    outcome_r_multiple: float | None
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
    rounded = Decimal(repr(value)).quantize(scale, rounding=ROUND_HALF_EVEN)
    # -0.0 (and what rounds to it) stores as 0: it must compare and hash as 0 too.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def _measure(value: float | None) -> float | None:
    """A gate's or check's number as it is stored and hashed: -0.0 is 0.0 (JSONB has no negative zero)."""
    return None if value is None else value + 0.0


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


def _check_measure(v: _Violations, path: str, value: float | None) -> None:
    """A gate's or risk check's value or bound: finite, and not absurdly large."""
    if value is None:
        return
    if not math.isfinite(value):
        v.add(path, "must be a finite number (not NaN or Infinity)")
    elif abs(value) > MAX_CHECK_MAGNITUDE:
        v.add(path, "must have a magnitude of at most 1e15")


def known_enum(v: _Violations, path: str, value: E | UnknownEnum | None) -> E | None:
    """The enum value, or None when unset; an unknown number is recorded as a violation."""
    if isinstance(value, UnknownEnum):
        v.add(path, f"unknown value {value.number}")
        return None
    return value


def _plain_entry(name: str, value: float | None, bound: float | None) -> bool:
    """A gate or risk check with nothing to report: the common case, tested before naming any path."""
    return (
        _CHECK_NAME.fullmatch(name) is not None
        and (value is None or abs(value) <= MAX_CHECK_MAGNITUDE)
        and (bound is None or abs(bound) <= MAX_CHECK_MAGNITUDE)
    )


def _check_unique_names(v: _Violations, path: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            v.add(f"{path}[{i}].name", f"duplicates the name {name!r} of an earlier entry")
        seen.add(name)


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
    quantized = value.quantize(_SCALE_8)
    return quantized.copy_abs() if quantized.is_zero() else quantized


def parse_timestamp(v: _Violations, path: str, raw: RawTimestamp) -> datetime | None:
    """A timestamp strictly inside years 1-9999, truncated to microseconds (PostgreSQL's precision).

    The very first and last microsecond of that range are refused too: asyncpg
    writes and reads them as -infinity and infinity.
    """
    if not 0 <= raw.nanos < 1_000_000_000:
        v.add(path, "nanos must be between 0 and 999999999")
        return None
    try:
        moment = _EPOCH + timedelta(seconds=raw.seconds, microseconds=raw.nanos // 1000)
    except OverflowError:
        moment = None
    if moment is None or not _FIRST_INSTANT < moment < _LAST_INSTANT:
        v.add(path, "must be after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59.999999Z")
        return None
    return moment


def parse_uuid(v: _Violations, path: str, text: str) -> uuid.UUID | None:
    """A UUID written the canonical way (8-4-4-4-12 hex digits); other spellings are refused."""
    if not _CANONICAL_UUID.fullmatch(text):
        v.add(path, "must be a UUID in its canonical form, such as 0b7f2c1e-6a4d-4e5b-9a8f-3c2d1e0f9a8b")
        return None
    return uuid.UUID(text)


def validate_uuid(path: str, text: str) -> uuid.UUID:
    v = _Violations()
    parsed = parse_uuid(v, path, text)
    v.raise_if_any()
    assert parsed is not None
    return parsed


def validate_batch_size(size: int) -> None:
    if not 1 <= size <= MAX_BATCH:
        raise InvalidArgument(
            [FieldViolation("decisions", f"must hold 1 to {MAX_BATCH} decisions, not {size}")]
        )


def validate_decision(raw: DecisionInput, *, now: datetime) -> NewDecision:
    """Check a LogDecision request and build the decision to store (its reasoning is written later)."""
    v = _Violations()
    _check_symbol(v, "symbol", raw.symbol)
    direction = known_enum(v, "direction", raw.direction)
    decision_type = known_enum(v, "decision_type", raw.decision_type)
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
        if not _plain_entry(gate.name, gate.value, gate.threshold):
            _check_name(v, f"gates[{i}].name", gate.name)
            _check_measure(v, f"gates[{i}].value", gate.value)
            _check_measure(v, f"gates[{i}].threshold", gate.threshold)
    _check_unique_names(v, "gates", [g.name for g in raw.gates])
    if len(raw.risk_checks) > MAX_RISK_CHECKS:
        v.add("risk_checks", f"must have at most {MAX_RISK_CHECKS} entries")
    for i, check in enumerate(raw.risk_checks):
        if not _plain_entry(check.name, check.value, check.limit):
            _check_name(v, f"risk_checks[{i}].name", check.name)
            _check_measure(v, f"risk_checks[{i}].value", check.value)
            _check_measure(v, f"risk_checks[{i}].limit", check.limit)
    _check_unique_names(v, "risk_checks", [c.name for c in raw.risk_checks])

    if raw.request_id is not None:
        rid = raw.request_id
        if not 1 <= len(rid) <= MAX_REQUEST_ID or not all(" " <= c <= "~" for c in rid):
            v.add("request_id", f"must be 1-{MAX_REQUEST_ID} printable ASCII characters")

    decided_at = None
    if raw.decided_at is not None:
        decided_at = parse_timestamp(v, "decided_at", raw.decided_at)
        if decided_at is not None and decided_at > now + CLOCK_SKEW:
            v.add("decided_at", f"must not be more than {CLOCK_SKEW.seconds} seconds in the future")

    if decision_type is not None:
        _check_type_rules(v, raw, decision_type, direction)

    v.raise_if_any()
    assert direction is not None and decision_type is not None
    assert agreement_ok and effective_k_ok
    return NewDecision(
        symbol=raw.symbol,
        direction=direction,
        decision_type=decision_type,
        trader_count=raw.trader_count,
        agreement_pct=_quantize(raw.agreement_pct, _SCALE_4),
        effective_k=_quantize(raw.effective_k, _SCALE_3),
        avg_confidence=None if raw.avg_confidence is None else _quantize(raw.avg_confidence, _SCALE_4),
        ev_estimate=None if raw.ev_estimate is None else _quantize(raw.ev_estimate, _SCALE_4),
        price_at_decision=price,
        # Built directly: dataclasses.replace costs several times more, per gate of every call.
        gates=tuple(Gate(g.name, g.passed, _measure(g.value), _measure(g.threshold)) for g in raw.gates),
        risk_checks=tuple(
            RiskCheck(c.name, c.passed, _measure(c.value), _measure(c.limit)) for c in raw.risk_checks
        ),
        request_id=raw.request_id,
        decided_at=decided_at,
    )


def _check_type_rules(
    v: _Violations, raw: DecisionInput, decision_type: DecisionType, direction: Direction | None
) -> None:
    """What SIGNAL, SKIP and RISK_REJECT each mean for the gates, risk checks and traders."""
    name = decision_type.name
    failed_gates = [i for i, g in enumerate(raw.gates) if not g.passed]
    failed_checks = [i for i, c in enumerate(raw.risk_checks) if not c.passed]
    if decision_type is DecisionType.SKIP:
        if not failed_gates:
            v.add("gates", "a SKIP needs at least one failed gate")
        return
    # SIGNAL and RISK_REJECT: the consensus held.
    if decision_type is DecisionType.SIGNAL and direction is Direction.NONE:
        v.add("direction", "a SIGNAL needs DIRECTION_LONG or DIRECTION_SHORT")
    if not raw.gates:
        v.add("gates", f"a {name} needs at least one gate (all passed)")
    for i in failed_gates:
        v.add(f"gates[{i}].passed", f"a {name} needs every gate passed")
    if raw.trader_count == 0:  # a negative count is already refused
        v.add("trader_count", f"a {name} needs at least 1 trader")
    if decision_type is DecisionType.SIGNAL:
        for i in failed_checks:
            v.add(f"risk_checks[{i}].passed", "a SIGNAL needs every risk check passed")
    elif not failed_checks:
        v.add("risk_checks", "a RISK_REJECT needs at least one failed risk check")


def validate_list(raw: ListInput) -> ListQuery:
    """Check a ListDecisions request, page token included."""
    v = _Violations()
    symbol = None
    if raw.symbol:
        _check_symbol(v, "symbol", raw.symbol)
        symbol = raw.symbol
    decision_type = known_enum(v, "decision_type", raw.decision_type)
    direction = known_enum(v, "direction", raw.direction)
    outcome = known_enum(v, "outcome", raw.outcome)
    start = parse_timestamp(v, "start_time", raw.start_time) if raw.start_time else None
    end = parse_timestamp(v, "end_time", raw.end_time) if raw.end_time else None
    if start is not None and end is not None and end <= start:
        v.add("end_time", "must be after start_time")
    if raw.page_size < 0:
        v.add("page_size", "must not be negative (0 means the default, 50)")
    v.raise_if_any()
    decision_filter = DecisionFilter(
        symbol=symbol,
        decision_type=decision_type,
        direction=direction,
        outcome=outcome,
        start_time=start,
        end_time=end,
    )
    cursor = decode_page_token(raw.page_token, decision_filter) if raw.page_token else None
    page_size = min(raw.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return ListQuery(filter=decision_filter, page_size=page_size, cursor=cursor)


def validate_execution_list(
    decision_id: str,
    decision_ids: Sequence[str],
    status: ExecutionStatus | UnknownEnum | None,
    page_size: int,
) -> tuple[tuple[uuid.UUID, ...] | None, ExecutionStatus | None]:
    """Check a ListExecutions request's filters: the decisions (None: any) and the status."""
    v = _Violations()
    parsed = [parse_uuid(v, "decision_id", decision_id)] if decision_id else []
    if len(decision_ids) > MAX_DECISION_IDS:
        v.add("decision_ids", f"must have at most {MAX_DECISION_IDS} entries")
    else:
        parsed += [parse_uuid(v, f"decision_ids[{i}]", text) for i, text in enumerate(decision_ids)]
    known_status = known_enum(v, "status", status)
    if page_size < 0:
        v.add("page_size", "must not be negative (0 means the default, 50)")
    v.raise_if_any()
    ids = tuple(sorted({p for p in parsed if p is not None}))
    return ids or None, known_status


def validate_stats(days: int | None, symbol: str | None) -> StatsQuery:
    v = _Violations()
    window = _window(v, days, symbol)
    v.raise_if_any()
    return StatsQuery(days=window, symbol=symbol or None)


def _window(v: _Violations, days: int | None, symbol: str | None) -> int:
    window = days or DEFAULT_STATS_DAYS
    if not 1 <= window <= MAX_STATS_DAYS:
        v.add("days", f"must be between 1 and {MAX_STATS_DAYS} (0 or unset means {DEFAULT_STATS_DAYS})")
    if symbol:
        _check_symbol(v, "symbol", symbol)
    return window


def _edges(
    v: _Violations, path: str, edges: Sequence[float], default: tuple[float, ...]
) -> tuple[float, ...]:
    if not edges:
        return default
    if not 2 <= len(edges) <= MAX_EDGES:
        v.add(path, f"must hold 2 to {MAX_EDGES} edges (or none for the defaults), not {len(edges)}")
    elif not all(math.isfinite(edge) for edge in edges):
        v.add(path, "must be finite numbers")
    elif any(low >= high for low, high in itertools.pairwise(edges)):
        v.add(path, "must be strictly increasing")
    return tuple(edges)


def validate_quality(
    days: int | None,
    symbol: str | None,
    *,
    width: BucketWidth | UnknownEnum | None,
    agreement_edges: Sequence[float],
    effective_k_edges: Sequence[float],
    trader_count_edges: Sequence[float],
) -> QualityQuery:
    v = _Violations()
    window = _window(v, days, symbol)
    known = known_enum(v, "bucket_width", width)
    query = QualityQuery(
        days=window,
        symbol=symbol or None,
        width=known or BucketWidth.DAY,
        agreement_edges=_edges(v, "agreement_edges", agreement_edges, DEFAULT_AGREEMENT_EDGES),
        effective_k_edges=_edges(v, "effective_k_edges", effective_k_edges, DEFAULT_EFFECTIVE_K_EDGES),
        trader_count_edges=_edges(v, "trader_count_edges", trader_count_edges, DEFAULT_TRADER_COUNT_EDGES),
    )
    v.raise_if_any()
    return query


def validate_gate_analytics(days: int | None, symbol: str | None, top_combinations: int | None) -> GateQuery:
    v = _Violations()
    window = _window(v, days, symbol)
    top = top_combinations or DEFAULT_TOP_COMBINATIONS
    if not 1 <= top <= MAX_TOP_COMBINATIONS:
        v.add(
            "top_combinations",
            f"must be between 1 and {MAX_TOP_COMBINATIONS} (0 or unset means {DEFAULT_TOP_COMBINATIONS})",
        )
    v.raise_if_any()
    return GateQuery(days=window, symbol=symbol or None, top_combinations=top)


def validate_outcome(raw: OutcomeInput, *, now: datetime) -> Outcome:
    """Check a RecordOutcome request's own fields (the decision's state is checked by the service)."""
    v = _Violations()
    decision_id = parse_uuid(v, "decision_id", raw.decision_id)
    pnl = None
    if not raw.outcome_pnl:
        v.add("outcome_pnl", "is required: a signed decimal such as -12.5")
    else:
        pnl = parse_decimal(v, "outcome_pnl", raw.outcome_pnl, signed=True)
    r_multiple = raw.outcome_r_multiple
    if r_multiple is None:
        v.add("outcome_r_multiple", "is required: the realised R-multiple (0 for a breakeven)")
    else:
        _check_double(v, "outcome_r_multiple", r_multiple, -MAX_R_MULTIPLE, MAX_R_MULTIPLE)
    closed_at = None
    if raw.outcome_closed_at is not None:
        closed_at = parse_timestamp(v, "outcome_closed_at", raw.outcome_closed_at)
        if closed_at is not None and closed_at > now + OUTCOME_CLOCK_SKEW:
            v.add(
                "outcome_closed_at",
                f"must not be in the future (at most {OUTCOME_CLOCK_SKEW.seconds} seconds of clock skew)",
            )
    v.raise_if_any()
    assert decision_id is not None and pnl is not None and r_multiple is not None
    return Outcome(
        decision_id=decision_id,
        pnl=pnl,
        r_multiple=_quantize(r_multiple, _SCALE_4),
        closed_at=closed_at,
    )
