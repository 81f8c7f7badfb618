"""An asyncio, typed client of sigma.v1 (DecisionService and ExecutionService) for hl-decide.

    async with SigmaClient("127.0.0.1:50051") as sigma:
        logged = await sigma.log_decision(
            symbol="BTC", direction="long", decision_type="signal",
            trader_count=7, agreement_pct=0.8, effective_k=3.2,
            gates=[Gate("supermajority", True, 0.8, 0.7)],
            price_at_decision=97123.5,
        )
        await sigma.record_outcome(logged.decision.id, pnl="12.5", r_multiple=1.2)

Retries are the client's own (not gRPC's service-config retry policy, which gives up
after a fixed number of attempts): every call has an overall deadline (`timeout`,
10 s by default) and is retried with exponential backoff and full jitter until it
succeeds, fails with an error that is not retryable, reaches `max_attempts`, or the
deadline leaves no time for another attempt. No sleep runs past the deadline. What
is retried, per method:

- UNAVAILABLE, for every method. The reads have no effect; LogDecision carries a
  request_id; RecordOutcome is idempotent by value; ExecuteSignal is idempotent by
  decision (one execution per decision: a retry that reaches a server which already
  executed, or is executing, the decision gets that execution, never a second order);
  UpdateExecutionConfig sets the same values again.
- DEADLINE_EXCEEDED of one attempt, for LogDecision(s) and RecordOutcome only. Their
  attempts are capped at `attempt_timeout` (3 s by default) so that one hung attempt
  leaves time for more. LogDecision: a retry with the same request_id returns the
  decision stored by the attempt that timed out (`replayed`), or stores it once;
  LogDecisions sends every decision with a request_id, so the same holds for each.
  RecordOutcome: repeating the outcome already recorded returns the decision
  unchanged (an omitted closed_at is not a difference), so a retry after an attempt
  that did write is a success, not an error. Every other method gives each attempt
  the whole time left: for reads a slow answer is worth waiting for rather than
  asking again, and ExecuteSignal waits on the server for an execution in progress
  within the caller's deadline, so a fresh attempt could only wait less.

When the deadline ends the retries, the error raised is the last attempt's: an
`UnavailableError` when the server kept answering UNAVAILABLE, a
`DeadlineExceededError` when the last attempt ran out of time. `error.attempts`
says how many attempts were made.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf import field_mask_pb2

from sigma_client import _convert as convert
from sigma_client._gen.sigma.v1 import decision_service_pb2 as dpb
from sigma_client._gen.sigma.v1 import decision_service_pb2_grpc as dpb_grpc
from sigma_client._gen.sigma.v1 import execution_service_pb2 as epb
from sigma_client._gen.sigma.v1 import execution_service_pb2_grpc as epb_grpc
from sigma_client._version import __version__
from sigma_client.errors import InternalError, SigmaError, from_rpc_error, from_status
from sigma_client.models import (
    BucketWidth,
    DecisionFields,
    DecisionType,
    Direction,
    ExecutionStatus,
    Gate,
    Metadata,
    Outcome,
    RiskCheck,
)

if TYPE_CHECKING:
    ClientInterceptor = (
        grpc.aio.UnaryUnaryClientInterceptor
        | grpc.aio.UnaryStreamClientInterceptor
        | grpc.aio.StreamUnaryClientInterceptor
        | grpc.aio.StreamStreamClientInterceptor
    )

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT_S",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "DEFAULT_INITIAL_BACKOFF_S",
    "DEFAULT_MAX_BACKOFF_S",
    "DEFAULT_TIMEOUT_S",
    "MAX_BATCH_SIZE",
    "USER_AGENT",
    "LoggedDecision",
    "SigmaClient",
    "new_request_id",
]

log = logging.getLogger("sigma_client")

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ATTEMPT_TIMEOUT_S = 3.0
DEFAULT_INITIAL_BACKOFF_S = 0.1
DEFAULT_MAX_BACKOFF_S = 2.0
DEFAULT_BACKOFF_MULTIPLIER = 2.0
USER_AGENT = f"sigma-grpc-client/{__version__}"
# LogDecisions takes 1 to this many decisions per call.
MAX_BATCH_SIZE = 1000
# An attempt is not started with less time than this before the deadline: it could only time out.
_MIN_ATTEMPT_S = 0.05

Request = TypeVar("Request")
Response = TypeVar("Response")


@dataclass(frozen=True, slots=True)
class _Policy:
    """Which status codes a method retries, and whether its attempts are capped by attempt_timeout."""

    retry_on: frozenset[grpc.StatusCode]
    capped_attempts: bool


# See the module docstring for why each method is in its group.
_RETRY_UNAVAILABLE = _Policy(frozenset({grpc.StatusCode.UNAVAILABLE}), capped_attempts=False)
_RETRY_UNAVAILABLE_AND_ATTEMPT_DEADLINE = _Policy(
    frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}), capped_attempts=True
)


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """What log_decision did: the stored `decision`, the `request_id` used, and whether it was `replayed`.

    `replayed` is True when the server already had this request_id with the same content
    (a retry of an attempt that did reach it, or a replay from a buffer): `decision` is the
    one stored the first time and nothing was written now.
    """

    decision: dpb.Decision
    request_id: str
    replayed: bool
    attempts: int


def new_request_id() -> str:
    """A fresh idempotency key for log_decision (a UUID4), e.g. to buffer a decision before sending it."""
    # The canonical text of a UUID4, made directly: str(uuid.uuid4()) costs twice as much, and the
    # batcher's log_decision_nowait calls this in hl-decide's own path.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _request_id(value: object) -> str:
    """The caller's idempotency key, or a fresh one: every LogDecision(s) request carries one."""
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not value:
        raise ValueError(f"request_id must be a non-empty str, got {value!r}")
    return value


_DECISION_FIELDS = DecisionFields.__required_keys__ | DecisionFields.__optional_keys__


def _fields_problem(fields: Mapping[str, object]) -> str | None:
    """What is wrong with the names of a decision's fields, if anything (the values are checked later)."""
    keys = fields.keys()
    if keys <= _DECISION_FIELDS and DecisionFields.__required_keys__ <= keys:
        return None  # the usual case, checked in two set operations
    unknown = sorted(keys - _DECISION_FIELDS)
    if unknown:
        return f"unexpected field(s) {', '.join(map(repr, unknown))}"
    missing = sorted(DecisionFields.__required_keys__ - keys)
    return f"missing required field(s) {', '.join(map(repr, missing))}"


def _decision_request(
    *,
    symbol: str,
    direction: Direction | str | int,
    decision_type: DecisionType | str | int,
    trader_count: int,
    agreement_pct: float,
    effective_k: float,
    gates: Sequence[Gate | Mapping[str, Any]] = (),
    risk_checks: Sequence[RiskCheck | Mapping[str, Any]] = (),
    avg_confidence: float | None = None,
    ev_estimate: float | None = None,
    price_at_decision: convert.Amount | None = None,
    decided_at: datetime | None = None,
    request_id: str | None = None,
) -> dpb.LogDecisionRequest:
    """log_decision's arguments as its request; a bad value is a ValueError naming the argument.

    Shared by log_decision, log_decisions and the batcher. `request_id` must be chosen before
    (None is refused) so that the caller's errors and results can carry it."""
    if request_id is None:
        raise ValueError("request_id must be a non-empty str, got None")
    return dpb.LogDecisionRequest(
        symbol=convert.text(symbol, "symbol"),
        direction=convert.direction(direction),
        decision_type=convert.decision_type(decision_type),
        trader_count=convert.integer(trader_count, "trader_count"),
        agreement_pct=convert.real(agreement_pct, "agreement_pct"),
        effective_k=convert.real(effective_k, "effective_k"),
        avg_confidence=convert.optional_real(avg_confidence, "avg_confidence"),
        ev_estimate=convert.optional_real(ev_estimate, "ev_estimate"),
        price_at_decision=(
            None if price_at_decision is None else convert.amount(price_at_decision, "price_at_decision")
        ),
        gates=convert.gates(gates),
        risk_checks=convert.risk_checks(risk_checks),
        request_id=_request_id(request_id),
        decided_at=convert.optional_timestamp(decided_at, "decided_at"),
    )


def _positive(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _seconds(name: str, value: object) -> float:
    checked = _positive(name, value)
    assert checked is not None
    return checked


def _metadata_pairs(name: str, value: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes):
        raise ValueError(f"{name} must be (key, value) pairs, got {type(value).__name__}")
    pairs = tuple(value)
    for pair in pairs:
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str | bytes)
        ):
            raise ValueError(f"{name} must be (str, str | bytes) pairs, got {pair!r}")
    return pairs


class SigmaClient:
    """A connection to sigma-grpc. Use as an async context manager, or call `close()`.

    Create it inside the event loop that uses it (grpc.aio channels belong to one loop).

    Arguments (all but `target` keyword-only):

    - `target`: "host:port" (any gRPC target string).
    - `token`: the bearer token the server gave this client (sent as `authorization: Bearer
      <token>` with every call); None when the server authenticates by certificate or not at all.
      It is never shown by repr or in errors.
    - `credentials`: TLS: grpc.ssl_channel_credentials(root_certificates, private_key,
      certificate_chain); the last two present a client certificate (mutual TLS). None: plaintext.
    - `timeout`: the default overall deadline of a call in seconds, retries included (10 s).
    - `attempt_timeout`: the cap of one attempt of LogDecision and RecordOutcome, whose timed-out
      attempts are retried (3 s); None lets an attempt use all the time left.
    - `max_attempts`: at most this many attempts per call; None (default) retries until the
      deadline; 1 makes exactly one attempt.
    - `initial_backoff`, `max_backoff`, `backoff_multiplier`: the exponential backoff between
      attempts (0.1 s, doubling, up to 2 s); each sleep is drawn uniformly from [0, backoff)
      (full jitter), so that clients restarted together do not retry in lockstep.
    - `wait_for_ready`: the default of every call (False): when True, an attempt made while the
      server cannot be reached waits for it instead of failing at once with UNAVAILABLE.
    - `metadata`: sent with every call, before the call's own metadata (e.g. an authorization
      header).
    - `channel_options`: extra grpc channel options, applied after the client's own.
    - `interceptors`: grpc.aio client interceptors (tracing, metrics), run on every attempt.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        attempt_timeout: float | None = DEFAULT_ATTEMPT_TIMEOUT_S,
        max_attempts: int | None = None,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S,
        max_backoff: float = DEFAULT_MAX_BACKOFF_S,
        backoff_multiplier: float = DEFAULT_BACKOFF_MULTIPLIER,
        wait_for_ready: bool = False,
        metadata: Metadata | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> None:
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"target must be a non-empty 'host:port' string, got {target!r}")
        if credentials is not None and not isinstance(credentials, grpc.ChannelCredentials):
            raise ValueError(f"credentials must be grpc.ChannelCredentials, got {type(credentials).__name__}")
        self._timeout = _seconds("timeout", timeout)
        self._attempt_timeout = _positive("attempt_timeout", attempt_timeout, allow_none=True)
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(
                f"max_attempts must be an int >= 1 or None (until the deadline), got {max_attempts!r}"
            )
        self._max_attempts = max_attempts
        self._initial_backoff = _seconds("initial_backoff", initial_backoff)
        self._max_backoff = _seconds("max_backoff", max_backoff)
        if self._max_backoff < self._initial_backoff:
            raise ValueError(
                f"max_backoff ({max_backoff!r}) must not be less than initial_backoff ({initial_backoff!r})"
            )
        if (
            isinstance(backoff_multiplier, bool)
            or not isinstance(backoff_multiplier, int | float)
            or not math.isfinite(backoff_multiplier)
            or backoff_multiplier < 1
        ):
            raise ValueError(f"backoff_multiplier must be a number >= 1, got {backoff_multiplier!r}")
        self._multiplier = float(backoff_multiplier)
        if not isinstance(wait_for_ready, bool):
            raise ValueError(f"wait_for_ready must be a bool, got {wait_for_ready!r}")
        self._wait_for_ready = wait_for_ready
        self._metadata = _metadata_pairs("metadata", metadata)
        if token is not None:
            if not isinstance(token, str) or not token or not all("!" <= c <= "~" for c in token):
                # Never echo it: it may be a real token with a stray newline.
                raise ValueError("token must be a non-empty string of printable ASCII without spaces")
            self._metadata = (("authorization", f"Bearer {token}"), *self._metadata)
        if isinstance(channel_options, str | bytes) or not all(
            isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in channel_options
        ):
            raise ValueError("channel_options must be (name, value) pairs")
        options: list[tuple[str, Any]] = [
            ("grpc.primary_user_agent", USER_AGENT),
            # The client retries itself (see the module docstring); gRPC's transparent retries of
            # attempts that never left the client stay on.
            # Reconnect quickly after a server restart instead of backing off for up to 2 minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            # A page of 500 decisions at the contract's limits is several MB: above gRPC's 4 MB default.
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            *channel_options,
        ]
        if isinstance(interceptors, str | bytes) or not all(
            isinstance(i, grpc.aio.ClientInterceptor) for i in interceptors
        ):
            raise ValueError("interceptors must be grpc.aio client interceptors")
        self._random = random.Random()  # noqa: S311  # backoff jitter, not cryptography
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
        )
        self._decisions = dpb_grpc.DecisionServiceStub(self._channel)
        self._executions = epb_grpc.ExecutionServiceStub(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        await self._channel.close()

    # -- the retry loop -------------------------------------------------------------------------------

    async def _call(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        policy: _Policy,
        *,
        timeout: float | None,
        metadata: Metadata | None,
        wait_for_ready: bool | None,
        request_id: str | None = None,
    ) -> tuple[Response, int]:
        """Call `rpc` with retries; the response and the number of attempts made."""
        total = self._timeout if timeout is None else _seconds("timeout", timeout)
        pairs = self._metadata + _metadata_pairs("metadata", metadata)
        if wait_for_ready is not None and not isinstance(wait_for_ready, bool):
            raise ValueError(f"wait_for_ready must be a bool or None, got {wait_for_ready!r}")
        ready = self._wait_for_ready if wait_for_ready is None else wait_for_ready
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total
        backoff = self._initial_backoff
        attempt = 0
        while True:
            attempt += 1
            left = deadline - loop.time()
            if policy.capped_attempts and self._attempt_timeout is not None:
                left = min(left, self._attempt_timeout)
            try:
                response = await rpc(request, timeout=left, metadata=pairs, wait_for_ready=ready)
            except grpc.aio.AioRpcError as error:
                if error.code() not in policy.retry_on or attempt == self._max_attempts:
                    raise from_rpc_error(error, attempts=attempt, request_id=request_id) from error
                # Full jitter, shortened so that the next attempt still starts before the deadline;
                # when no time is left for one, the last error stands.
                delay = min(self._random.uniform(0, backoff), deadline - loop.time() - _MIN_ATTEMPT_S)
                if delay < 0:
                    raise from_rpc_error(error, attempts=attempt, request_id=request_id) from error
                log.debug(
                    "%s failed with %s (attempt %d); retrying in %.3f s",
                    type(request).__name__.removesuffix("Request"),
                    error.code().name,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                backoff = min(backoff * self._multiplier, self._max_backoff)
            else:
                return response, attempt

    # -- DecisionService ------------------------------------------------------------------------------

    async def log_decision(
        self,
        *,
        symbol: str,
        direction: Direction | str | int,
        decision_type: DecisionType | str | int,
        trader_count: int,
        agreement_pct: float,
        effective_k: float,
        gates: Sequence[Gate | Mapping[str, Any]] = (),
        risk_checks: Sequence[RiskCheck | Mapping[str, Any]] = (),
        avg_confidence: float | None = None,
        ev_estimate: float | None = None,
        price_at_decision: convert.Amount | None = None,
        decided_at: datetime | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> LoggedDecision:
        """Record one consensus evaluation; the stored decision, the request_id used, and `replayed`.

        `request_id` is the idempotency key: give the one a buffered decision was saved with
        so that replaying it after a crash cannot store it twice; without one a fresh UUID4 is
        used for this call and all its retries. Errors carry it as `error.request_id`, so a
        call that failed for good can be retried later with the same id.
        `direction`: "long", "short" or "none"; `decision_type`: "signal", "skip" or
        "risk_reject"; `price_at_decision`: a Decimal, str or float (at most 8 decimals);
        `decided_at`: a timezone-aware datetime (defaults to the server's time).
        """
        request_id = _request_id(request_id)
        request = _decision_request(
            symbol=symbol,
            direction=direction,
            decision_type=decision_type,
            trader_count=trader_count,
            agreement_pct=agreement_pct,
            effective_k=effective_k,
            gates=gates,
            risk_checks=risk_checks,
            avg_confidence=avg_confidence,
            ev_estimate=ev_estimate,
            price_at_decision=price_at_decision,
            decided_at=decided_at,
            request_id=request_id,
        )
        response, attempts = await self._call(
            self._decisions.LogDecision,
            request,
            _RETRY_UNAVAILABLE_AND_ATTEMPT_DEADLINE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
            request_id=request_id,
        )
        return LoggedDecision(
            decision=response.decision, request_id=request_id, replayed=response.replayed, attempts=attempts
        )

    async def log_decisions(
        self,
        decisions: Sequence[DecisionFields],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> list[LoggedDecision | SigmaError]:
        """Record 1 to 1,000 evaluations in one LogDecisions call; per decision, in order, its
        `LoggedDecision` or the `SigmaError` it was refused with (InvalidArgumentError,
        AlreadyExistsError for REQUEST_ID_REUSED), as log_decision would have returned or raised.

        Each item holds log_decision's per-decision arguments (`DecisionFields`); one without a
        `request_id` gets a fresh UUID4, so retrying the call (the client does, as for
        log_decision) never stores a decision twice. A bad value is a ValueError naming the item
        (`decisions[3]: ...`) before anything is sent. An error of the whole call (UNAVAILABLE
        once the deadline ends the retries, UNAUTHENTICATED, PERMISSION_DENIED) is raised: then
        nothing was refused one by one, and what may have been stored is replayed by a retry.
        The request must stay under the server's 4 MiB bound (a thousand typical decisions are
        a few hundred KB); the batcher splits its batches to stay under it.
        """
        if isinstance(decisions, str | bytes | Mapping) or not isinstance(decisions, Sequence):
            raise ValueError(f"decisions must be a sequence of mappings, got {type(decisions).__name__}")
        if not 1 <= len(decisions) <= MAX_BATCH_SIZE:
            raise ValueError(f"decisions must hold 1 to {MAX_BATCH_SIZE} decisions, got {len(decisions)}")
        requests = []
        for i, fields in enumerate(decisions):
            try:
                if not isinstance(fields, Mapping):
                    raise ValueError(f"must be a mapping of log_decision's arguments, not {type(fields)}")
                problem = _fields_problem(fields)
                if problem is not None:
                    raise ValueError(problem)
                arguments: dict[str, Any] = {**fields, "request_id": _request_id(fields.get("request_id"))}
                requests.append(_decision_request(**arguments))
            except ValueError as error:
                raise ValueError(f"decisions[{i}]: {error}") from None
        results, _ = await self._log_decision_requests(
            requests, timeout=timeout, metadata=metadata, wait_for_ready=wait_for_ready
        )
        return results

    async def _log_decision_requests(
        self,
        requests: Sequence[dpb.LogDecisionRequest],
        *,
        timeout: float | None,
        metadata: Metadata | None,
        wait_for_ready: bool | None,
    ) -> tuple[list[LoggedDecision | SigmaError], int]:
        """One LogDecisions call with the client's retries (requests built, ids set); the results and
        the number of attempts. The batcher builds its requests itself and retries them as they are."""
        response, attempts = await self._call(
            self._decisions.LogDecisions,
            dpb.LogDecisionsRequest(decisions=requests),
            _RETRY_UNAVAILABLE_AND_ATTEMPT_DEADLINE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        if len(response.results) != len(requests):
            # The contract answers each decision; a short answer cannot be matched to its decisions.
            raise InternalError(
                grpc.StatusCode.INTERNAL,
                f"LogDecisions answered {len(response.results)} results for {len(requests)} decisions",
                attempts=attempts,
            )
        results: list[LoggedDecision | SigmaError] = []
        for request, result in zip(requests, response.results, strict=True):
            if result.WhichOneof("result") == "logged":
                logged = result.logged
                results.append(LoggedDecision(logged.decision, request.request_id, logged.replayed, attempts))
            else:
                results.append(from_status(result.error, attempts=attempts, request_id=request.request_id))
        return results, attempts

    async def get_decision(
        self,
        decision_id: str | uuid.UUID,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> dpb.Decision:
        """One decision by id (NotFoundError, reason DECISION_NOT_FOUND, when there is none)."""
        request = dpb.GetDecisionRequest(id=convert.identifier(decision_id, "decision_id"))
        response, _ = await self._call(
            self._decisions.GetDecision,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response.decision

    async def list_decisions(
        self,
        *,
        symbol: str | None = None,
        decision_type: DecisionType | str | int | None = None,
        direction: Direction | str | int | None = None,
        outcome: Outcome | str | int | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> dpb.ListDecisionsResponse:
        """One page of decisions, newest first; pass its `next_page_token` back for the next page.

        Filters left None match everything; `outcome` ("pending", "closed", "win", "loss")
        selects signals only. `page_size` 0 means the server's default (50).
        """
        request = dpb.ListDecisionsRequest(
            symbol="" if symbol is None else convert.text(symbol, "symbol"),
            decision_type=(
                dpb.DECISION_TYPE_UNSPECIFIED
                if decision_type is None
                else convert.decision_type(decision_type)
            ),
            direction=dpb.DIRECTION_UNSPECIFIED if direction is None else convert.direction(direction),
            outcome=dpb.OUTCOME_UNSPECIFIED if outcome is None else convert.outcome(outcome),
            start_time=convert.optional_timestamp(start_time, "start_time"),
            end_time=convert.optional_timestamp(end_time, "end_time"),
            page_size=convert.integer(page_size, "page_size"),
            page_token=convert.text(page_token, "page_token"),
        )
        response, _ = await self._call(
            self._decisions.ListDecisions,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def iter_decisions(
        self,
        *,
        symbol: str | None = None,
        decision_type: DecisionType | str | int | None = None,
        direction: Direction | str | int | None = None,
        outcome: Outcome | str | int | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> AsyncIterator[dpb.Decision]:
        """Every decision matching the filters of list_decisions, newest first, fetched page by page.

        `timeout` applies to each page (each page is one call, with its own retries).
        """
        token = ""
        while True:
            page = await self.list_decisions(
                symbol=symbol,
                decision_type=decision_type,
                direction=direction,
                outcome=outcome,
                start_time=start_time,
                end_time=end_time,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
                metadata=metadata,
                wait_for_ready=wait_for_ready,
            )
            for decision in page.decisions:
                yield decision
            token = page.next_page_token
            if not token:
                return

    async def get_stats(
        self,
        *,
        days: int | None = None,
        symbol: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> dpb.GetStatsResponse:
        """Statistics of the last `days` days (server default 7): `totals`, `by_symbol`, `gate_failures`."""
        request = dpb.GetStatsRequest(
            days=None if days is None else convert.integer(days, "days"),
            symbol=None if symbol is None else convert.text(symbol, "symbol"),
        )
        response, _ = await self._call(
            self._decisions.GetStats,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def get_signal_quality(
        self,
        *,
        days: int | None = None,
        symbol: str | None = None,
        bucket_width: BucketWidth | str | int | None = None,
        agreement_edges: Sequence[float] | None = None,
        effective_k_edges: Sequence[float] | None = None,
        trader_count_edges: Sequence[float] | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> dpb.GetSignalQualityResponse:
        """Does the signal pay over time, and does stronger consensus pay more? The last `days` days
        (server default 7): `time_series` (UTC buckets of `bucket_width`: "hour", "day" (the server's
        default) or "week"), and the closed signals' outcomes by agreement, effective K and trader
        count (`by_agreement`, `by_effective_k`, `by_trader_count`), each in the ranges between
        its edges (2 to 50 increasing numbers; None: the server's defaults). A bucket with fewer
        than `min_closed` closed signals is flagged `insufficient_data`.
        """
        request = dpb.GetSignalQualityRequest(
            days=None if days is None else convert.integer(days, "days"),
            symbol=None if symbol is None else convert.text(symbol, "symbol"),
            bucket_width=(
                dpb.BUCKET_WIDTH_UNSPECIFIED if bucket_width is None else convert.bucket_width(bucket_width)
            ),
            agreement_edges=()
            if agreement_edges is None
            else convert.reals(agreement_edges, "agreement_edges"),
            effective_k_edges=(
                () if effective_k_edges is None else convert.reals(effective_k_edges, "effective_k_edges")
            ),
            trader_count_edges=(
                () if trader_count_edges is None else convert.reals(trader_count_edges, "trader_count_edges")
            ),
        )
        response, _ = await self._call(
            self._decisions.GetSignalQuality,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def get_gate_analytics(
        self,
        *,
        days: int | None = None,
        symbol: str | None = None,
        top_combinations: int | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> dpb.GetGateAnalyticsResponse:
        """Which gates cost trades, over the last `days` days (server default 7): per gate
        (`gates`) how often it was evaluated, failed and failed alone, which side of its threshold
        fails and how near the failed values came to it (`near_misses`); the `top_combinations`
        (server default 10) most frequent sets of gates failing together in skips (`failed_together`).
        """
        request = dpb.GetGateAnalyticsRequest(
            days=None if days is None else convert.integer(days, "days"),
            symbol=None if symbol is None else convert.text(symbol, "symbol"),
            top_combinations=(
                None if top_combinations is None else convert.integer(top_combinations, "top_combinations")
            ),
        )
        response, _ = await self._call(
            self._decisions.GetGateAnalytics,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def record_outcome(
        self,
        decision_id: str | uuid.UUID,
        *,
        pnl: convert.Amount,
        r_multiple: float,
        closed_at: datetime | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> dpb.Decision:
        """Attach a closed position's result to a SIGNAL decision; the decision with its outcome.

        `pnl` in USD: a Decimal, str or float (at most 8 decimals); `r_multiple` is required
        (0 is a breakeven); `closed_at` is a timezone-aware datetime (defaults to now).
        Recording the same outcome again is a success (the call is idempotent by value).
        """
        request = dpb.RecordOutcomeRequest(
            decision_id=convert.identifier(decision_id, "decision_id"),
            outcome_pnl=convert.amount(pnl, "pnl"),
            outcome_r_multiple=convert.real(r_multiple, "r_multiple"),
            outcome_closed_at=convert.optional_timestamp(closed_at, "closed_at"),
        )
        response, _ = await self._call(
            self._decisions.RecordOutcome,
            request,
            _RETRY_UNAVAILABLE_AND_ATTEMPT_DEADLINE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response.decision

    # -- ExecutionService -----------------------------------------------------------------------------

    async def execute_signal(
        self,
        decision_id: str | uuid.UUID,
        *,
        dry_run_only: bool = False,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> epb.Execution:
        """Execute a SIGNAL decision (or get its existing execution): at most one per decision.

        A live execution talks to the exchange; give it a `timeout` long enough for that.
        With `dry_run_only=True` the server refuses (`FailedPreconditionError`, reason
        `DRY_RUN_REQUIRED`) unless execution is in dry run: paper trading that can never
        place a real order.
        """
        request = epb.ExecuteSignalRequest(
            decision_id=convert.identifier(decision_id, "decision_id"), dry_run_only=dry_run_only
        )
        response, _ = await self._call(
            self._executions.ExecuteSignal,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response.execution

    async def get_execution(
        self,
        execution_id: str | uuid.UUID,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> epb.Execution:
        """One execution by id (NotFoundError, reason EXECUTION_NOT_FOUND, when there is none)."""
        response = await self._get_execution(execution_id, timeout, metadata, wait_for_ready)
        return response.execution

    async def get_execution_history(
        self,
        execution_id: str | uuid.UUID,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> tuple[epb.Execution, list[epb.ExecutionEvent]]:
        """One execution and every state change it went through, oldest first."""
        response = await self._get_execution(execution_id, timeout, metadata, wait_for_ready)
        return response.execution, list(response.events)

    async def _get_execution(
        self,
        execution_id: str | uuid.UUID,
        timeout: float | None,
        metadata: Metadata | None,
        wait_for_ready: bool | None,
    ) -> epb.GetExecutionResponse:
        request = epb.GetExecutionRequest(id=convert.identifier(execution_id, "execution_id"))
        response, _ = await self._call(
            self._executions.GetExecution,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def list_executions(
        self,
        *,
        decision_id: str | uuid.UUID | None = None,
        status: ExecutionStatus | str | int | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> epb.ListExecutionsResponse:
        """One page of executions, newest first; pass its `next_page_token` back for the next page."""
        request = epb.ListExecutionsRequest(
            decision_id="" if decision_id is None else convert.identifier(decision_id, "decision_id"),
            status=epb.EXECUTION_STATUS_UNSPECIFIED if status is None else convert.execution_status(status),
            page_size=convert.integer(page_size, "page_size"),
            page_token=convert.text(page_token, "page_token"),
        )
        response, _ = await self._call(
            self._executions.ListExecutions,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def iter_executions(
        self,
        *,
        decision_id: str | uuid.UUID | None = None,
        status: ExecutionStatus | str | int | None = None,
        page_size: int = 0,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> AsyncIterator[epb.Execution]:
        """Every execution matching the filters of list_executions, page by page (`timeout` per page)."""
        token = ""
        while True:
            page = await self.list_executions(
                decision_id=decision_id,
                status=status,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
                metadata=metadata,
                wait_for_ready=wait_for_ready,
            )
            for execution in page.executions:
                yield execution
            token = page.next_page_token
            if not token:
                return

    async def get_execution_config(
        self,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> epb.ExecutionConfig:
        """The execution settings."""
        response, _ = await self._call(
            self._executions.GetExecutionConfig,
            epb.GetExecutionConfigRequest(),
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return response.config

    async def update_execution_config(
        self,
        *,
        enabled: bool | None = None,
        hl_enabled: bool | None = None,
        dry_run: bool | None = None,
        hl_max_leverage: int | None = None,
        hl_max_position_pct: float | None = None,
        hl_max_exposure_pct: float | None = None,
        hl_slippage_pct: float | None = None,
        max_signal_age_s: int | None = None,
        max_price_drift_pct: float | None = None,
        actor: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> epb.ExecutionConfig:
        """Change the settings given (the others stay as they are); the settings after the change.

        The update mask is the names of the arguments given (not None); `_pct` values are
        fractions (0.02 = 2 %). The audit table records the authenticated caller as who made the
        change; `actor` (the `x-sigma-actor` metadata, at most 200 characters) is kept beside it as
        a note, e.g. the person behind a shared token. Retrying after UNAVAILABLE sets the same
        values again.
        """
        flags = {"enabled": enabled, "hl_enabled": hl_enabled, "dry_run": dry_run}
        counts = {"hl_max_leverage": hl_max_leverage, "max_signal_age_s": max_signal_age_s}
        fractions = {
            "hl_max_position_pct": hl_max_position_pct,
            "hl_max_exposure_pct": hl_max_exposure_pct,
            "hl_slippage_pct": hl_slippage_pct,
            "max_price_drift_pct": max_price_drift_pct,
        }
        values: dict[str, bool | int | float] = {}
        for name, flag in flags.items():
            if flag is not None:
                if not isinstance(flag, bool):
                    raise ValueError(f"{name} must be a bool, got {flag!r}")
                values[name] = flag
        values.update({n: convert.integer(v, n) for n, v in counts.items() if v is not None})
        values.update({n: convert.real(v, n) for n, v in fractions.items() if v is not None})
        if not values:
            raise ValueError("update_execution_config needs at least one setting to change")
        extra: tuple[tuple[str, str | bytes], ...] = ()
        if actor is not None:
            extra = (("x-sigma-actor", convert.text(actor, "actor")),)
        config = epb.ExecutionConfig()
        for name, value in values.items():
            setattr(config, name, value)
        request = epb.UpdateExecutionConfigRequest(
            config=config, update_mask=field_mask_pb2.FieldMask(paths=list(values))
        )
        response, _ = await self._call(
            self._executions.UpdateExecutionConfig,
            request,
            _RETRY_UNAVAILABLE,
            timeout=timeout,
            metadata=(*_metadata_pairs("metadata", metadata), *extra),
            wait_for_ready=wait_for_ready,
        )
        return response.config
