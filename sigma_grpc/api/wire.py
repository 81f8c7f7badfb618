"""Wire forms shared by every service: enum numbers, Timestamps, decimal strings, optional numbers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2

from sigma_grpc.domain.validation import RawTimestamp, UnknownEnum

E = TypeVar("E", bound=enum.Enum)


def enum_value(number: int, known: Mapping[Any, E]) -> E | UnknownEnum | None:
    """The domain value of an enum number: None for 0 (unset), UnknownEnum for a number we do not know.

    Validation then refuses an unknown number naming the field, instead of
    treating it as unset (which would make a filter match everything).
    """
    if number == 0:
        return None
    return known.get(number, UnknownEnum(number))


def raw_time(ts: timestamp_pb2.Timestamp) -> RawTimestamp:
    return RawTimestamp(seconds=ts.seconds, nanos=ts.nanos)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_timestamp(target: timestamp_pb2.Timestamp, moment: datetime) -> None:
    """Write an aware datetime (naive ones are taken as UTC, as FromDatetime does) into `target`.

    Worked out directly, in place: Timestamp.FromDatetime and a message copied
    into its parent cost several times more, and every decision in a page has
    two or three timestamps.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since = moment - _EPOCH
    target.seconds = since.days * 86400 + since.seconds
    target.nanos = since.microseconds * 1000


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    set_timestamp(ts, moment)
    return ts


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal as plain text ("0.00012345", never "1.2345E-4"); None stays unset on the wire."""
    return None if value is None else format(value, "f")


def optional_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
