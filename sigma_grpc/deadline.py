"""The deadline of the call being served, so storage can bound its waits by it.

The API layer sets it from the gRPC deadline for the duration of a call; storage
reads it to cap pool acquires and query timeouts, so a slow or unreachable
database answers UNAVAILABLE before the caller gives up rather than after.
Work that must outlive its caller (an execution attempt) runs unbounded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

# Answer this much before the caller's deadline, so the answer still reaches it.
ANSWER_MARGIN_S = 0.1
# Storage waits end this much earlier still, leaving room to cancel a statement
# that ran out of time (so it cannot complete later) and hand its connection back.
CLEANUP_MARGIN_S = 0.15

_deadline: ContextVar[float | None] = ContextVar("sigma_deadline", default=None)


@contextlib.contextmanager
def bounded_by(seconds: float | None) -> Iterator[None]:
    """Within this block, work must end `seconds` from now (None: no deadline)."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def unbounded() -> Iterator[None]:
    """Within this block there is no caller's deadline (work that must finish regardless)."""
    with bounded_by(None):
        yield


def time_left(default: float, *, cleanup: bool = False) -> float:
    """Seconds an operation may take: `default`, capped by the deadline less the margins.

    Waits for the database leave CLEANUP_MARGIN_S for the cleanup after them;
    the cleanup itself (`cleanup=True`) may use that room too.
    """
    deadline = _deadline.get()
    if deadline is None:
        return default
    margin = ANSWER_MARGIN_S if cleanup else ANSWER_MARGIN_S + CLEANUP_MARGIN_S
    # Never zero: asyncpg treats a timeout of 0 as "no time at all" only for some calls.
    return max(min(default, deadline - time.monotonic() - margin), 0.001)
