"""DecisionBatcher: hl-decide hands decisions over in microseconds; a background task logs them in batches.

    async with SigmaClient("sigma-grpc:50051") as sigma, DecisionBatcher(sigma) as batcher:
        batcher.log_decision_nowait(symbol="BTC", direction="long", ...)  # returns at once
        ...
    # leaving the block flushes: every decision stored, replayed or handed to on_error

How it works, and why:

- The caller's side is a few dictionary and deque operations: the request id (a UUID4 unless
  given) and `decided_at` (the time of enqueueing unless given, so a decision delayed by an
  outage still says when it was made) are fixed at once; the protobuf request, which costs about
  ten times the rest, is built by the background task, a chunk at a time so that hl-decide's
  own coroutines keep running. A bad value therefore does not raise in the caller: it reaches
  `on_error` and the decision's future as the ValueError log_decision would have raised.
- A batch leaves when `max_batch` decisions are queued, `max_delay` after the first of them was
  queued, or at once for `flush()`/`close()`; it is also cut to stay under the server's 4 MiB
  request bound.
- One batch is in flight at a time by default (`max_in_flight`): batches are stored in the
  order they were queued, and a retrying batch holds back the ones behind it (which could only
  fail the same way). On a 2-core machine shared with sigma-grpc and PostgreSQL, one 500-row
  statement at a time is enough for thousands of decisions a second and leaves the server's
  CPU to its other callers; up to 4 may be allowed, at the cost of that order.
- Request ids make retries safe: a batch that failed with an error the client retries
  (UNAVAILABLE, DEADLINE_EXCEEDED) is sent again, as it is, with backoff, until each decision
  is `give_up_after` (300 s) old; a decision given up on fails with the last error. Every
  other error is final for the decisions it concerns: a refused decision (INVALID_ARGUMENT,
  REQUEST_ID_REUSED) alone, or all of a batch refused whole (UNAUTHENTICATED,
  PERMISSION_DENIED). Either way the decision's future gets the error and `on_error` is
  called once with it: nothing is dropped silently and nothing is retried forever.
- The queue is bounded (`max_pending` decisions not yet acknowledged, in flight included):
  `await batcher.log_decision(...)` waits for room, `log_decision_nowait(...)` raises
  BatcherFull rather than drop anything.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self, Unpack

from sigma_client.client import (
    _RETRY_UNAVAILABLE_AND_ATTEMPT_DEADLINE,
    MAX_BATCH_SIZE,
    LoggedDecision,
    SigmaClient,
    _decision_request,
    _fields_problem,
    new_request_id,
)
from sigma_client.errors import SigmaError
from sigma_client.models import DecisionFields, Metadata

if TYPE_CHECKING:
    from sigma_client._gen.sigma.v1 import decision_service_pb2 as dpb

__all__ = [
    "DEFAULT_GIVE_UP_AFTER_S",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_DELAY_S",
    "DEFAULT_MAX_PENDING",
    "BatcherClosed",
    "BatcherError",
    "BatcherFull",
    "DecisionBatcher",
    "ErrorHandler",
    "PendingDecision",
    "log_error",
]

log = logging.getLogger("sigma_client.batcher")

DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_DELAY_S = 0.05
DEFAULT_MAX_PENDING = 10_000
DEFAULT_GIVE_UP_AFTER_S = 300.0
MAX_IN_FLIGHT = 4
# The server refuses requests above 4 MiB; a thousand decisions at the contract's limits (64 gates
# and 64 risk checks with long names) would be about 12 MB.
_MAX_BATCH_BYTES = 3 * 1024 * 1024
# Requests built between two yields to the event loop: about a millisecond and a half of work.
_BUILD_CHUNK = 32
# A retry round of a batch whose oldest decision is (nearly) due still gets this long.
_MIN_ROUND_S = 1.0
_RETRYABLE = _RETRY_UNAVAILABLE_AND_ATTEMPT_DEADLINE.retry_on


class BatcherError(Exception):
    """The batcher could not take a decision (it was not enqueued)."""


class BatcherFull(BatcherError):
    """`max_pending` decisions are waiting: log_decision_nowait refuses rather than drop one."""


class BatcherClosed(BatcherError):
    """The batcher is closed (or closing): it takes no more decisions."""


class PendingDecision:
    """A decision the batcher holds until sigma-grpc acknowledges it.

    - `request_id`: its idempotency key (the caller's or a fresh UUID4);
    - `fields`: log_decision's keyword arguments, `request_id` and `decided_at` filled in, so
      `await client.log_decision(**pending.fields)` replays it safely later;
    - `future`: resolved with the LoggedDecision, or failed with the error `on_error` gets;
    - `enqueued_at`: the event loop's time (`loop.time()`) when it was queued.
    """

    __slots__ = ("_request", "_seq", "enqueued_at", "fields", "future", "request_id")

    def __init__(
        self,
        request_id: str,
        fields: DecisionFields,
        future: asyncio.Future[LoggedDecision],
        enqueued_at: float,
        seq: int,
    ) -> None:
        self.request_id = request_id
        self.fields = fields
        self.future = future
        self.enqueued_at = enqueued_at
        self._seq = seq
        self._request: dpb.LogDecisionRequest | None = None

    def __repr__(self) -> str:
        return f"PendingDecision(request_id={self.request_id!r}, symbol={self.fields.get('symbol')!r})"


ErrorHandler = Callable[[PendingDecision, Exception], None]


def log_error(pending: PendingDecision, error: Exception) -> None:
    """The default `on_error`: one ERROR line with the request id and the error (never a token:
    errors carry the server's message, not the call's metadata)."""
    log.error("sigma-grpc did not log decision %s (%s): %s", pending.request_id, type(error).__name__, error)


def _for(item: PendingDecision, error: SigmaError) -> SigmaError:
    """An error of a whole call as this decision's own (its request_id): each future and on_error
    call gets an exception of its own, since raising one object in several places mixes tracebacks."""
    own = type(error)(
        error.code,
        error.message,
        reason=error.reason,
        field_violations=error.field_violations,
        attempts=error.attempts,
        request_id=item.request_id,
    )
    own.__cause__ = error.__cause__
    return own


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _count(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        bounds = f"{low} to {high}" if high else f">= {low}"
        raise ValueError(f"{name} must be an int {bounds}, got {value!r}")
    return value


def _seconds(name: str, value: object, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        raise ValueError(f"{name} must be a {'' if zero else 'positive '}number of seconds, got {value!r}")
    return float(value)


class DecisionBatcher:
    """Logs decisions in LogDecisions batches from a background task. See the module docstring.

    Create it inside the event loop that uses it, from an open SigmaClient (the client's
    retries, timeouts and credentials apply to each batch); close it (or leave its `async with`)
    before closing the client.

    - `max_batch`: decisions per call, at most 1,000 (500).
    - `max_delay`: how long the first decision queued may wait for others (0.05 s).
    - `max_pending`: decisions held and not yet acknowledged, in flight included (10,000).
    - `max_in_flight`: batches sent at once, 1 to 4 (1: stored in the order queued).
    - `give_up_after`: seconds after queueing when a decision that keeps failing with a
      retryable error is given up on (300); None retries it until it is acknowledged (or
      close(timeout=...) gives up on it).
    - `on_error`: called as `on_error(pending, error)` once for each decision that was not
      logged; the default logs it at ERROR. It runs in the event loop: keep it short (hand
      the decision to a queue or a file to replay it later with the same request id).
    - `metadata`: added to every call, after the client's own.
    """

    def __init__(
        self,
        client: SigmaClient,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay: float = DEFAULT_MAX_DELAY_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_in_flight: int = 1,
        give_up_after: float | None = DEFAULT_GIVE_UP_AFTER_S,
        on_error: ErrorHandler | None = None,
        metadata: Metadata | None = None,
    ) -> None:
        if not isinstance(client, SigmaClient):
            raise ValueError(f"client must be a SigmaClient, got {type(client).__name__}")
        if on_error is not None and not callable(on_error):
            raise ValueError("on_error must be a callable taking (pending, error)")
        self._client = client
        self._max_batch = _count("max_batch", max_batch, 1, MAX_BATCH_SIZE)
        self._max_delay = _seconds("max_delay", max_delay, zero=True)
        self._max_pending = _count("max_pending", max_pending, 1)
        in_flight = _count("max_in_flight", max_in_flight, 1, MAX_IN_FLIGHT)
        self._give_up_after = None if give_up_after is None else _seconds("give_up_after", give_up_after)
        self._on_error: ErrorHandler = on_error or log_error
        self._metadata = metadata
        self._loop = asyncio.get_running_loop()

        # Every decision not yet acknowledged is either in the queue or in exactly one batch of
        # _in_flight, each in the order queued: the lowest _seq among their heads is the oldest
        # decision not acknowledged, which is what flush() waits on.
        self._queue: deque[PendingDecision] = deque()
        self._in_flight: list[list[PendingDecision]] = []
        self._next_seq = 0
        self._flush_before = 0  # decisions queued before this _seq leave without waiting for max_delay
        self._unacknowledged = 0
        # Producers waiting for room, first come first served; a granted one is moved from the
        # queue to _granted until it enqueues (or is cancelled and passes the room on).
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._granted = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Set while the sender that is assembling a batch sleeps; producers resolve it only
        # when that sender has something to do (a first decision, a full batch).
        self._poke: asyncio.Future[None] | None = None
        self._assembling = asyncio.Lock()
        self._closing = False
        self._tasks = [
            self._loop.create_task(self._send_loop(), name=f"sigma-decision-batcher-{i}")
            for i in range(in_flight)
        ]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Decisions taken and not yet acknowledged (queued or in flight)."""
        return self._unacknowledged

    @property
    def closed(self) -> bool:
        """True once close() was called: no more decisions are taken."""
        return self._closing

    # -- producers ------------------------------------------------------------------------------------

    def log_decision_nowait(self, **fields: Unpack[DecisionFields]) -> asyncio.Future[LoggedDecision]:
        """Queue a decision (log_decision's keyword arguments) and return at once.

        Returns a future of its LoggedDecision; awaiting it is optional (its errors also go to
        `on_error`, and an unawaited failed future is never reported as "exception was never
        retrieved"). Raises BatcherFull when `max_pending` decisions are waiting (or producers
        are waiting for room in log_decision: they were first), BatcherClosed after close(),
        TypeError for an unknown or missing argument and ValueError for a bad request_id. Other
        values are checked in the background: a bad one fails the future and reaches on_error.
        """
        self._check(fields)
        if self._unacknowledged + self._granted >= self._max_pending or self._room_waiters:
            raise BatcherFull(
                f"{self._max_pending} decisions are waiting for sigma-grpc; "
                "await log_decision(...) to wait for room instead"
            )
        return self._push(fields)

    async def log_decision(self, **fields: Unpack[DecisionFields]) -> asyncio.Future[LoggedDecision]:
        """Queue a decision, waiting for room when `max_pending` decisions are waiting.

        Returns once the decision is queued (not once it is stored) with the same future as
        log_decision_nowait. Producers waiting for room are served in the order they came. A
        producer cancelled while waiting has queued nothing. Raises BatcherClosed when the
        batcher is closed before there is room.
        """
        self._check(fields)
        if self._unacknowledged + self._granted < self._max_pending and not self._room_waiters:
            return self._push(fields)
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._room_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                if waiter in self._room_waiters:  # still waiting: it never held room
                    self._room_waiters.remove(waiter)
            else:
                # Granted room, then cancelled before it could run: pass the room on.
                self._granted -= 1
                self._wake_producers()
            raise
        # Nothing is awaited from here on: the decision is queued whole or not at all.
        self._granted -= 1
        if self._closing:
            raise BatcherClosed("the batcher was closed while this decision waited for room")
        return self._push(fields)

    def _check(self, fields: DecisionFields) -> None:
        if self._closing:
            raise BatcherClosed("the batcher is closed")
        problem = _fields_problem(fields)
        if problem is not None:
            raise TypeError(f"log_decision: {problem}")
        request_id = fields.get("request_id")
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            raise ValueError(f"request_id must be a non-empty str, got {request_id!r}")

    def _push(self, fields: DecisionFields) -> asyncio.Future[LoggedDecision]:
        request_id = fields.get("request_id")
        if request_id is None:
            request_id = fields["request_id"] = new_request_id()
        if fields.get("decided_at") is None:
            # When it was decided, not when a batch reached the server (seconds or minutes later).
            fields["decided_at"] = datetime.now(UTC)
        loop = self._loop
        future: asyncio.Future[LoggedDecision] = loop.create_future()
        seq = self._next_seq
        self._next_seq = seq + 1
        queue = self._queue
        queue.append(PendingDecision(request_id, fields, future, loop.time(), seq))
        self._unacknowledged += 1
        if self._poke is not None and len(queue) in (1, self._max_batch):
            # The sender sleeps until a first decision comes, or until the first one is due.
            _resolve(self._poke)
        return future

    def _wake_producers(self) -> None:
        while self._room_waiters and self._unacknowledged + self._granted < self._max_pending:
            waiter = self._room_waiters.popleft()
            if not waiter.done():  # a cancelled producer removes its own waiter; never grant it twice
                waiter.set_result(None)
                self._granted += 1

    # -- flush and close ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every decision queued before this call is acknowledged: stored, replayed,
        or handed to on_error. Queued decisions leave at once, without waiting for max_delay.
        Cancelling flush() cancels only the wait."""
        target = self._next_seq
        if self._oldest_unacknowledged() >= target:
            return
        self._flush_before = max(self._flush_before, target)
        if self._poke is not None:
            _resolve(self._poke)
        entry = (target, self._loop.create_future())
        self._flush_waiters.append(entry)
        try:
            await entry[1]
        finally:
            if entry in self._flush_waiters:
                self._flush_waiters.remove(entry)

    async def close(self, timeout: float | None = None) -> None:
        """Take no more decisions, flush, and stop the background task(s).

        Producers waiting for room get BatcherClosed. Without a `timeout`, close() waits for
        every decision to be acknowledged: during an outage, until they are `give_up_after` old.
        With a `timeout` (seconds), or when close() is cancelled, the decisions not acknowledged
        by then are given up on: their futures fail with BatcherClosed and on_error gets each
        (one in flight may have been stored: replay it with its request id). Closing twice is
        harmless.
        """
        if timeout is not None:
            timeout = _seconds("timeout", timeout, zero=True)
        if not self._closing:
            self._closing = True
            for waiter in self._room_waiters:
                waiter.set_result(None)  # each wakes, sees _closing and raises BatcherClosed
                self._granted += 1
            self._room_waiters.clear()
            if self._poke is not None:
                _resolve(self._poke)
        try:
            _, running = await asyncio.wait(self._tasks, timeout=timeout)
        except asyncio.CancelledError:
            await self._abort()
            raise
        if running:
            await self._abort()
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("the decision batcher stopped on an error", exc_info=task.exception())
        # Only a bug could leave decisions here; they still may not vanish.
        self._give_up_on_the_rest()

    async def _abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._give_up_on_the_rest()

    def _give_up_on_the_rest(self) -> None:
        stranded = [item for batch in self._in_flight for item in batch] + list(self._queue)
        self._in_flight.clear()
        self._queue.clear()
        for item in stranded:
            self._settle(
                item,
                BatcherClosed(
                    "closed before sigma-grpc acknowledged this decision (it may have been stored: "
                    "replay it with its request_id)"
                ),
            )
        self._acknowledged(len(stranded))

    # -- acknowledgement ------------------------------------------------------------------------------

    def _oldest_unacknowledged(self) -> int:
        heads = [batch[0]._seq for batch in self._in_flight if batch]
        if self._queue:
            heads.append(self._queue[0]._seq)
        return min(heads, default=self._next_seq)

    def _settle(self, item: PendingDecision, outcome: LoggedDecision | Exception) -> None:
        future = item.future
        if isinstance(outcome, LoggedDecision):
            if not future.done():  # the caller may have cancelled its future: the decision still counts
                future.set_result(outcome)
            return
        if not future.done():
            future.set_exception(outcome)
            # Reported below; this keeps asyncio from also logging "exception was never retrieved"
            # for the (many) callers that never await their future.
            future.exception()
        try:
            self._on_error(item, outcome)
        except Exception:
            log.exception("on_error failed for decision %s", item.request_id)

    def _acknowledged(self, count: int) -> None:
        if not count:
            return
        self._unacknowledged -= count
        self._wake_producers()
        if self._flush_waiters:
            oldest = self._oldest_unacknowledged()
            for target, waiter in self._flush_waiters:
                if target <= oldest:
                    _resolve(waiter)

    # -- the background task(s) -----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            async with self._assembling:
                batch = await self._next_batch()
            if batch is None:
                return
            try:
                await self._deliver(batch)
            except Exception as error:  # a bug: its decisions still reach on_error
                log.exception("the decision batcher failed to deliver a batch")
                failed = list(batch)
                batch.clear()
                for item in failed:
                    self._settle(item, error)
                self._acknowledged(len(failed))
            finally:
                # Delivered, it is empty; cancelled by close(), what is left is close()'s to give up on.
                if not batch:
                    self._in_flight.remove(batch)

    async def _sleep(self, until: float | None) -> None:
        poke: asyncio.Future[None] = self._loop.create_future()
        self._poke = poke
        timer = None if until is None else self._loop.call_at(until, _resolve, poke)
        try:
            await poke
        finally:
            self._poke = None
            if timer is not None:
                timer.cancel()

    async def _next_batch(self) -> list[PendingDecision] | None:
        """The next batch (registered in _in_flight), once one is due; None once closed and empty."""
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return None
                await self._sleep(None)
                continue
            head = queue[0]
            due = head.enqueued_at + self._max_delay
            if (
                len(queue) >= self._max_batch
                or head._seq < self._flush_before
                or self._closing
                or self._loop.time() >= due
            ):
                break
            await self._sleep(due)
        batch: list[PendingDecision] = []
        self._in_flight.append(batch)
        size = built = 0
        while queue and len(batch) < self._max_batch:
            if built == _BUILD_CHUNK:
                built = 0
                await asyncio.sleep(0)  # building is the costly part: let hl-decide run meanwhile
                continue  # the queue may have changed meanwhile
            item = queue[0]
            if item._request is None:
                built += 1
                try:
                    item._request = _decision_request(**item.fields)
                except Exception as error:  # ValueError, or a value whose conversion itself fails
                    queue.popleft()
                    self._settle(item, error)
                    self._acknowledged(1)
                    continue
            item_size = item._request.ByteSize()
            if batch and size + item_size > _MAX_BATCH_BYTES:
                break
            queue.popleft()
            batch.append(item)
            size += item_size
        return batch

    async def _deliver(self, batch: list[PendingDecision]) -> None:
        """Send `batch` until each of its decisions is acknowledged; `batch` shrinks as they are."""
        client = self._client
        loop = self._loop
        backoff = client._initial_backoff
        attempts = 0
        last_error: SigmaError | None = None
        while batch:
            if last_error is not None and self._give_up_after is not None:
                # Oldest first: the decisions past their time are a prefix of the batch.
                now = loop.time()
                expired = 0
                while expired < len(batch) and now >= batch[expired].enqueued_at + self._give_up_after:
                    expired += 1
                if expired:
                    given_up = batch[:expired]
                    del batch[:expired]
                    for item in given_up:
                        self._settle(item, _for(item, last_error))
                    self._acknowledged(expired)
                    continue
            timeout = client._timeout
            if self._give_up_after is not None:
                left = batch[0].enqueued_at + self._give_up_after - loop.time()
                timeout = min(timeout, max(left, _MIN_ROUND_S))
            requests = []
            for item in batch:
                assert item._request is not None  # built by _next_batch
                requests.append(item._request)
            try:
                results, round_attempts = await client._log_decision_requests(
                    requests, timeout=timeout, metadata=self._metadata, wait_for_ready=None
                )
            except SigmaError as error:
                attempts += error.attempts
                error.attempts = attempts
                if error.code not in _RETRYABLE:
                    # Refused whole (UNAUTHENTICATED, PERMISSION_DENIED, ...): final for every decision.
                    failed = list(batch)
                    batch.clear()
                    for item in failed:
                        self._settle(item, _for(item, error))
                    self._acknowledged(len(failed))
                    return
                last_error = error
                log.debug(
                    "LogDecisions of %d decisions failed with %s (%d attempts); retrying",
                    len(batch),
                    error.code.name,
                    attempts,
                )
                # The client already backed off within the round; this keeps a client with
                # max_attempts=1 from spinning.
                await asyncio.sleep(client._random.uniform(0, backoff))
                backoff = min(backoff * client._multiplier, client._max_backoff)
                continue
            attempts += round_attempts
            retry: list[PendingDecision] = []
            settled = 0
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, LoggedDecision):
                    self._settle(item, replace(result, attempts=attempts))
                elif result.code in _RETRYABLE:
                    # The contract refuses single decisions only for good; should a transient error
                    # come back for one anyway, it is retried like a failed call.
                    last_error = result
                    retry.append(item)
                    continue
                else:
                    result.attempts = attempts
                    self._settle(item, result)
                settled += 1
            batch[:] = retry
            self._acknowledged(settled)
            if retry:
                await asyncio.sleep(client._random.uniform(0, backoff))
                backoff = min(backoff * client._multiplier, client._max_backoff)
