"""Plain Python values → the fields of sigma.v1 requests, checked before anything is sent.

Every problem is a ValueError naming the argument, raised before any network call.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import timestamp_pb2

from sigma_client._gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_client._gen.sigma.v1 import execution_service_pb2 as epb
from sigma_client.models import Gate, RiskCheck

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)

# Money and prices are stored as DECIMAL(20, 8): more decimals would be rounded away silently,
# more integer digits do not fit.
MAX_DECIMALS = 8
MAX_INTEGER_DIGITS = 12

Amount = Decimal | str | float | int


def amount(value: object, name: str) -> str:
    """A price or P&L as the plain decimal string the API carries ("97123.5", "0.00001", "-3.5").

    A float converts as Python shows it (its shortest round-trip repr: 0.1 is "0.1", never
    Decimal(0.1)'s binary expansion); exponents become plain notation. NaN, infinities,
    bools, and values with more than 8 significant decimals are refused.
    """
    number: Decimal
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a Decimal, str or float, not a bool")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        number = Decimal(repr(value))
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{name} must be a decimal number, got {value!r}") from None
    else:
        raise ValueError(f"{name} must be a Decimal, str or float, got {type(value).__name__}")
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not number.is_zero() and number.adjusted() >= MAX_INTEGER_DIGITS:
        # Checked before anything is written out: 1E+999999999 would be a billion digits.
        raise ValueError(f"{name} must have at most {MAX_INTEGER_DIGITS} integer digits, got {value!r}")
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite numbers have an int exponent
    excess = -MAX_DECIMALS - exponent
    if excess > 0:
        # Trailing zeros beyond the 8th decimal change nothing ("1.500000000"); other digits would be lost.
        kept, dropped = digits[: max(len(digits) - excess, 0)], digits[max(len(digits) - excess, 0) :]
        if any(dropped):
            raise ValueError(f"{name} has more than {MAX_DECIMALS} decimals: {value!r}")
        number = Decimal((sign, kept or (0,), -MAX_DECIMALS))
    if number.is_zero():
        number = number.copy_abs()  # "-0" is zero
    return format(number, "f")


def real(value: object, name: str) -> float:
    """A double field: an int, float or Decimal (not a bool). Ranges are the server's to check."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(
            f"{name} must be a number a double can hold, got one of {len(str(value))} digits"
        ) from None


def optional_real(value: object, name: str) -> float | None:
    return None if value is None else real(value, name)


def reals(values: object, name: str) -> list[float]:
    """A repeated double field: a sequence of numbers (its length and order are the server's to check)."""
    return [real(value, f"{name}[{i}]") for i, value in enumerate(_sequence(values, name))]


def integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    return value


def text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {type(value).__name__}")
    return value


def identifier(value: object, name: str) -> str:
    """A decision or execution id: a str or a uuid.UUID (the server checks the form)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    return text(value, name)


def timestamp(value: object, name: str) -> timestamp_pb2.Timestamp:
    """A timezone-aware datetime; a naive one is refused (local time or UTC? the server can't tell)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got naive {value}")
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def optional_timestamp(value: object, name: str) -> timestamp_pb2.Timestamp | None:
    return None if value is None else timestamp(value, name)


def _enum(wrapper: _EnumTypeWrapper[V], prefix: str, value: object, name: str) -> V:
    """An enum by its short name ("long", case-insensitive), full name, or protobuf number."""
    allowed = [key for key in wrapper.keys() if not key.endswith("_UNSPECIFIED")]  # noqa: SIM118
    if isinstance(value, str):
        key = value.upper()
        key = key if key.startswith(prefix) else prefix + key
        if key in allowed:
            return wrapper.Value(key)
    elif isinstance(value, int) and not isinstance(value, bool) and value in wrapper.values() and value != 0:
        return wrapper.Value(wrapper.Name(value))  # the number's own V
    choices = ", ".join(repr(k.removeprefix(prefix).lower()) for k in allowed)
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def direction(value: object, name: str = "direction") -> dpb.Direction.ValueType:
    return _enum(dpb.Direction, "DIRECTION_", value, name)


def decision_type(value: object, name: str = "decision_type") -> dpb.DecisionType.ValueType:
    return _enum(dpb.DecisionType, "DECISION_TYPE_", value, name)


def outcome(value: object, name: str = "outcome") -> dpb.Outcome.ValueType:
    return _enum(dpb.Outcome, "OUTCOME_", value, name)


def bucket_width(value: object, name: str = "bucket_width") -> dpb.BucketWidth.ValueType:
    return _enum(dpb.BucketWidth, "BUCKET_WIDTH_", value, name)


def execution_status(value: object, name: str = "status") -> epb.ExecutionStatus.ValueType:
    return _enum(epb.ExecutionStatus, "EXECUTION_STATUS_", value, name)


def _passed(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def _fields(item: object, name: str, kind: type[Gate] | type[RiskCheck], extra: str) -> Mapping[str, Any]:
    if isinstance(item, kind):
        return {"name": item.name, "passed": item.passed, "value": item.value, extra: getattr(item, extra)}
    if isinstance(item, Mapping):
        unknown = set(item) - {"name", "passed", "value", extra}
        if unknown or "name" not in item or "passed" not in item:
            raise ValueError(
                f"{name} needs the keys name, passed (and optionally value, {extra}); got {item!r}"
            )
        return item
    raise ValueError(f"{name} must be a {kind.__name__} or a mapping, got {type(item).__name__}")


def _sequence(items: object, name: str) -> Sequence[object]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise ValueError(f"{name} must be a sequence (a list or tuple), got {type(items).__name__}")
    return items


def gates(items: Sequence[Gate | Mapping[str, Any]]) -> list[dpb.Gate]:
    out = []
    for i, item in enumerate(_sequence(items, "gates")):
        name = f"gates[{i}]"
        f = _fields(item, name, Gate, "threshold")
        out.append(
            dpb.Gate(
                name=text(f["name"], f"{name}.name"),
                passed=_passed(f["passed"], f"{name}.passed"),
                value=optional_real(f.get("value"), f"{name}.value"),
                threshold=optional_real(f.get("threshold"), f"{name}.threshold"),
            )
        )
    return out


def risk_checks(items: Sequence[RiskCheck | Mapping[str, Any]]) -> list[dpb.RiskCheck]:
    out = []
    for i, item in enumerate(_sequence(items, "risk_checks")):
        name = f"risk_checks[{i}]"
        f = _fields(item, name, RiskCheck, "limit")
        out.append(
            dpb.RiskCheck(
                name=text(f["name"], f"{name}.name"),
                passed=_passed(f["passed"], f"{name}.passed"),
                value=optional_real(f.get("value"), f"{name}.value"),
                limit=optional_real(f.get("limit"), f"{name}.limit"),
            )
        )
    return out
