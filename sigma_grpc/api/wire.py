"""Wire forms shared by every service: Timestamps, decimal strings, optional numbers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from google.protobuf import timestamp_pb2

from sigma_grpc.domain.validation import RawTimestamp


def raw_time(ts: timestamp_pb2.Timestamp) -> RawTimestamp:
    return RawTimestamp(seconds=ts.seconds, nanos=ts.nanos)


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal as plain text ("0.00012345", never "1.2345E-4"); None stays unset on the wire."""
    return None if value is None else format(value, "f")


def optional_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
