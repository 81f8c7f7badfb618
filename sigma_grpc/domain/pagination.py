"""Opaque page tokens for keyset pagination.

A token carries a version, the (sort time, id) of the last row of a page, a
fingerprint of the filters it was made for, and a checksum. It is not secret (it
only says where a list stopped), but a token that was damaged, made up, or made
for other filters is refused with INVALID_ARGUMENT (reason INVALID_PAGE_TOKEN)
instead of silently paging through something else.

The fingerprint covers only the filters that are set, so adding a filter field
later leaves the tokens in flight valid (a new field is unset in every old
request). Version 1 tokens fingerprinted every field, set or not; they are still
read, so a rolling upgrade does not break the lists people are paging through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sigma_grpc.domain.errors import FieldViolation, InvalidArgument, Reason
from sigma_grpc.domain.models import PageCursor

# Any frozen dataclass of the filters a list was asked for (None = not set).
Filters = Any

_VERSION = 2
_FIELD = "page_token"


def _json_value(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _digest(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, default=_json_value)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _fingerprint(filters: Filters) -> str:
    """A digest of the filters that are set, and of which list they are for."""
    present = {name: value for name, value in asdict(filters).items() if value is not None}
    return _digest({"kind": type(filters).__name__, **present})


# The filter fields each list had when version 1 tokens were issued.
_V1_FIELDS = {
    "DecisionFilter": ("symbol", "decision_type", "direction", "outcome", "start_time", "end_time"),
    "_Filters": ("decision_id", "status"),
}


def _fingerprint_v1(filters: Filters) -> str:
    """Version 1's digest: every field the filters had then, set or not (a later field must be unset)."""
    kind = type(filters).__name__
    known = _V1_FIELDS.get(kind, ())
    values = asdict(filters)
    if any(value is not None for name, value in values.items() if name not in known):
        return ""  # a filter version 1 did not have: no version 1 token can be for it
    return _digest({"kind": kind, **{name: values[name] for name in known}})


_FINGERPRINTS = {1: _fingerprint_v1, 2: _fingerprint}


def _checksum(body: str) -> str:
    return hashlib.sha256(f"sigma.v1/page/{body}".encode()).hexdigest()[:12]


def encode_page_token(cursor: PageCursor, filters: Filters) -> str:
    body = json.dumps(
        {
            "v": _VERSION,
            "f": _fingerprint(filters),
            "t": cursor.sort_time.isoformat(),
            "i": str(cursor.id),
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    packed = json.dumps({"b": body, "c": _checksum(body)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")


def decode_page_token(token: str, filters: Filters) -> PageCursor:
    """The cursor in `token`, or InvalidArgument when it is not ours or not for these filters."""
    try:
        packed = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        body = packed["b"]
        if not isinstance(body, str) or packed["c"] != _checksum(body):
            raise ValueError("checksum")
        fields = json.loads(body)
        version, fingerprint, moment, row_id = fields["v"], fields["f"], fields["t"], fields["i"]
        if version not in _FINGERPRINTS or not all(isinstance(x, str) for x in (fingerprint, moment, row_id)):
            raise ValueError("shape")
        decided_at = datetime.fromisoformat(moment)
        if decided_at.tzinfo is None:
            raise ValueError("naive time")
        decided_at = decided_at.astimezone(UTC)
        if not 1 <= decided_at.year <= 9999:
            raise ValueError("time out of range")
        cursor = PageCursor(sort_time=decided_at, id=uuid.UUID(row_id))
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        # The checksum is not a secret: a hand-made token gets here too, and must
        # be refused as a client error, never crash the call.
        raise InvalidArgument(
            [FieldViolation(_FIELD, "is not a page token issued by this service")], Reason.INVALID_PAGE_TOKEN
        ) from exc
    if fingerprint != _FINGERPRINTS[version](filters):
        raise InvalidArgument(
            [FieldViolation(_FIELD, "was issued for other filters: repeat the request's filters exactly")],
            Reason.INVALID_PAGE_TOKEN,
        )
    return cursor
