"""One structured log line per sigma.v1 call: method, code, duration, peer, caller and ids.

The telemetry interceptor (sigma_grpc/metrics.py) opens a record when a call
starts and writes the line when it ends, whatever the outcome; code further in
adds what only it knows with `note()`: authentication the caller's name, the
servicers the request id and the decision or execution id. The fields travel as
`extra=` on the record, so they are JSON keys (or key=value pairs in text).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

import grpc

log = logging.getLogger("sigma_grpc.calls")

_fields: ContextVar[dict[str, str] | None] = ContextVar("sigma_call_fields", default=None)


def begin() -> Token[dict[str, str] | None]:
    """Open the record of the call being served (in its task)."""
    return _fields.set({})


def note(**fields: str | None) -> None:
    """Add fields to the current call's line; unset values and calls outside a record are ignored."""
    record = _fields.get()
    if record is not None:
        record.update({key: value for key, value in fields.items() if value})


def finish(
    token: Token[dict[str, str] | None], method: str, code: grpc.StatusCode, seconds: float, peer: str
) -> None:
    """Write the call's line and close its record."""
    fields = _fields.get() or {}
    _fields.reset(token)
    level = logging.ERROR if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) else logging.INFO
    log.log(
        level,
        "%s %s %.1f ms",
        method,
        code.name,
        seconds * 1000,
        extra={
            "grpc_method": method,
            "grpc_code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "peer": peer,
            **fields,
        },
    )
