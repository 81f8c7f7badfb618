"""Reads from a PostgreSQL streaming replica (SIGMA_DATABASE_READ_URL): routing, failover, lag.

DecisionService's reads (ListDecisions, GetDecision, GetStats) may be answered by
a hot standby, to take their load off the primary. Writes never go there (a
standby refuses them anyway), and neither does anything of ExecutionService: an
execution status or config read a few seconds stale could mislead the money path.

Two pieces, wired by `start_server`:

- `ReplicaMonitor` samples the replica every few seconds on the pools (bounded
  like any statement): whether it answers, whether it is still a standby, and
  how far its replay is behind the primary, kept in `lag_s`/`lag_bytes` for
  metrics. Only changes are logged (and the lag once a minute), so an outage or
  a lagging replica is one line, not one per call.
- `ReplicaReads` routes the decision log's reads to the replica while the monitor
  says it is usable, and to the primary otherwise. A read the replica refuses
  or drops (connection refused or lost) marks it unusable at once and is
  answered by the primary; the monitor's next good sample brings it back.

Read-your-writes for new ids (GetDecision of an id the replica has not replayed
yet asks the primary before answering NOT_FOUND) is the decision log's own rule,
in `sigma_grpc.services.decisions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import asyncpg

from sigma_grpc import deadline
from sigma_grpc.domain.errors import DomainError, Reason
from sigma_grpc.domain.models import ClosedSetKey, Decision, ListQuery, StatsQuery, StatsRows
from sigma_grpc.domain.quality import GateQuery, QualityQuery
from sigma_grpc.storage.decisions import DecisionStore, GateRows, QualityRows, RollupReadCache
from sigma_grpc.storage.pool import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often the replica is sampled: also the longest a replica that came back waits to get reads again.
POLL_INTERVAL_S = 2.0
# How long one sample's statement (a pool acquire included) may take on each server.
SAMPLE_TIMEOUT_S = 2.0
# Lag beyond this is logged as a warning (lists and stats are that stale); back under it, once more.
LAG_WARNING_S = 10.0
# How often the lag is logged while nothing changes.
LAG_REPORT_EVERY_S = 60.0

# On the replica: whether it is still a standby, how far it has replayed, and the age of the last
# transaction it replayed (NULL before its first one). pg_lsn values arrive as integers.
_REPLICA_SAMPLE = """
    SELECT pg_is_in_recovery() AS standby,
           pg_last_wal_replay_lsn() AS replayed,
           EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age_s
"""


class DecisionReads(Protocol):
    """The reads of the decision log that a replica may answer (DecisionStore has them all)."""

    async def get(self, decision_id: uuid.UUID) -> Decision | None: ...

    async def list(self, query: ListQuery) -> tuple[list[Decision], bool]: ...

    async def stats_rows(
        self,
        query: StatsQuery,
        *,
        closed_known: Callable[[ClosedSetKey], bool] = ...,
        cache: RollupReadCache | None = ...,
    ) -> StatsRows: ...

    async def quality_rows(
        self,
        query: QualityQuery,
        *,
        strengths_known: Callable[[ClosedSetKey], bool] = ...,
        cache: RollupReadCache | None = ...,
    ) -> QualityRows: ...

    async def gate_rows(self, query: GateQuery, *, cache: RollupReadCache | None = ...) -> GateRows: ...


def _describe(error: BaseException) -> str:
    cause = error.__cause__ if isinstance(error, DomainError) and error.__cause__ is not None else error
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _timed_out(error: DomainError) -> bool:
    return isinstance(error.__cause__, TimeoutError | asyncpg.QueryCanceledError)


class ReplicaMonitor:
    """Samples the replica every `interval_s`: usable or not, and its lag behind the primary."""

    def __init__(
        self,
        primary: Database,
        replica: Database,
        *,
        interval_s: float = POLL_INTERVAL_S,
        timeout_s: float = SAMPLE_TIMEOUT_S,
        warn_lag_s: float = LAG_WARNING_S,
        report_every_s: float = LAG_REPORT_EVERY_S,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._warn_lag_s = warn_lag_s
        self._report_every_s = report_every_s
        # Unusable until a first sample shows a standby: a wrong URL must never answer a read.
        self.usable = False
        # Seconds the replica's data is behind the primary's (0: it has replayed all the primary
        # had when sampled); None while unknown. For metrics; sampled every interval.
        self.lag_s: float | None = None
        # Bytes of WAL the replica has yet to replay; None while unknown.
        self.lag_bytes: int | None = None
        self._state: str | None = None  # "usable", "unreachable", "not_standby"; None before a sample
        self._since = time.monotonic()
        self._caught_up_at: float | None = None
        self._lagging = False
        self._reported_at: float | None = None
        self._failed_sample_logged = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sample now, then every interval, until `stop()`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="replica-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def unreachable(self, error: BaseException) -> None:
        """The replica could not be reached (by a read or a sample): reads go to the primary meanwhile."""
        self.usable = False
        self.lag_s = self.lag_bytes = None
        if self._state != "unreachable":
            log.warning(
                "the read replica cannot be reached (%s): reads go to the primary until it answers again",
                _describe(error),
            )
            self._state, self._since = "unreachable", time.monotonic()

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:
                # A bug or an unexpected server answer must not end the sampling, nor fill the log.
                if not self._failed_sample_logged:
                    log.exception("sampling the read replica failed")
                    self._failed_sample_logged = True
            await asyncio.sleep(self._interval_s)

    async def sample(self) -> None:
        """One sample: the primary's WAL position, then the replica's answers."""
        asked_primary_at = time.monotonic()
        primary_lsn: int | None = None
        try:
            with deadline.bounded_by(self._timeout_s):
                primary_lsn = await self._primary.fetchval("SELECT pg_current_wal_lsn()")
        except (DomainError, asyncpg.PostgresError):
            # The primary's own monitor reports its outages; this sample just lacks a byte lag.
            primary_lsn = None
        try:
            with deadline.bounded_by(self._timeout_s):
                row = await self._replica.fetchrow(_REPLICA_SAMPLE)
        except DomainError as error:
            self.unreachable(error)
            return
        assert row is not None
        if not row["standby"]:
            self._not_a_standby()
            return
        await self._answered()
        self._measure(primary_lsn, row["replayed"], row["replay_age_s"], asked_primary_at)

    def _not_a_standby(self) -> None:
        # Promoted, or the wrong URL: its data may have parted from the primary's, where writes go.
        self.usable = False
        self.lag_s = self.lag_bytes = None
        if self._state != "not_standby":
            log.warning(
                "the read replica is not a standby (pg_is_in_recovery() is false: promoted, or "
                "SIGMA_DATABASE_READ_URL names the wrong server): reads go to the primary"
            )
            self._state, self._since = "not_standby", time.monotonic()

    async def _answered(self) -> None:
        if self._state == "usable":
            return
        if self._state is None:
            log.info("the read replica answers: DecisionService reads go to it")
        else:
            log.info(
                "the read replica answers again as a standby after %.1f s: reads go to it again",
                time.monotonic() - self._since,
            )
        if self._state == "unreachable":
            # Pooled connections from before the outage may be dead without knowing it yet (a
            # partition sends no reset): each is replaced at its next acquire or release.
            await self._replica.pool.expire_connections()
        self._state, self._since = "usable", time.monotonic()
        self.usable = True

    def _measure(
        self, primary_lsn: int | None, replayed: int | None, replay_age_s: float | None, asked_at: float
    ) -> None:
        """Lag from one sample; the primary was asked (at `asked_at`) before the replica."""
        now = time.monotonic()
        if primary_lsn is None or replayed is None:
            self.lag_bytes = self.lag_s = None
            return
        self.lag_bytes = max(primary_lsn - replayed, 0)
        if self.lag_bytes == 0:
            # It has all the primary had when asked, so nothing it lacks is older than that.
            self.lag_s, self._caught_up_at = 0.0, asked_at
        else:
            # The age of the last transaction replayed, which alone would read as hours after a
            # quiet spell followed by one write: capped by the time since it was last caught up.
            candidates = [
                value
                for value in (replay_age_s, None if self._caught_up_at is None else now - self._caught_up_at)
                if value is not None
            ]
            self.lag_s = max(min(candidates), 0.0) if candidates else None
        self._report(now)

    def _report(self, now: float) -> None:
        lag_s, lag_bytes = self.lag_s, self.lag_bytes
        if lag_s is None:
            return
        if lag_s > self._warn_lag_s:
            if not self._lagging:
                log.warning(
                    "the read replica is %.1f s (%d bytes of WAL) behind the primary, more than %.1f s: "
                    "lists and stats it answers are that stale",
                    lag_s,
                    lag_bytes,
                    self._warn_lag_s,
                )
                self._lagging, self._reported_at = True, now
            return
        if self._lagging:
            log.info("the read replica caught up: %.1f s (%d bytes) behind the primary", lag_s, lag_bytes)
            self._lagging, self._reported_at = False, now
        elif self._reported_at is None or now - self._reported_at >= self._report_every_s:
            log.info("read replica lag: %.3f s (%d bytes of WAL)", lag_s, lag_bytes)
            self._reported_at = now
        else:
            log.debug("read replica lag: %.3f s (%d bytes of WAL)", lag_s, lag_bytes)


class ReplicaReads:
    """The decision log's reads, answered by the replica while it is usable, by the primary otherwise."""

    def __init__(self, replica: DecisionStore, primary: DecisionStore, monitor: ReplicaMonitor) -> None:
        self._replica = replica
        self._primary = primary
        self._monitor = monitor

    async def get(self, decision_id: uuid.UUID) -> Decision | None:
        return await self._read(lambda store: store.get(decision_id))

    async def list(self, query: ListQuery) -> tuple[list[Decision], bool]:
        return await self._read(lambda store: store.list(query))

    async def stats_rows(
        self,
        query: StatsQuery,
        *,
        closed_known: Callable[[ClosedSetKey], bool] = lambda key: False,
        cache: RollupReadCache | None = None,
    ) -> StatsRows:
        return await self._read(lambda store: store.stats_rows(query, closed_known=closed_known, cache=cache))

    async def quality_rows(
        self,
        query: QualityQuery,
        *,
        strengths_known: Callable[[ClosedSetKey], bool] = lambda key: False,
        cache: RollupReadCache | None = None,
    ) -> QualityRows:
        return await self._read(
            lambda store: store.quality_rows(query, strengths_known=strengths_known, cache=cache)
        )

    async def gate_rows(self, query: GateQuery, *, cache: RollupReadCache | None = None) -> GateRows:
        return await self._read(lambda store: store.gate_rows(query, cache=cache))

    async def _read(self, read: Callable[[DecisionStore], Awaitable[T]]) -> T:
        if self._monitor.usable:
            try:
                return await read(self._replica)
            except DomainError as error:
                # A read that ran out of time is not re-run on the primary: the call has no time
                # left for it, and moving slow reads there is the load the replica exists to carry.
                # A replica that stopped answering altogether is caught by the monitor's next sample.
                if error.reason is not Reason.DATABASE_UNAVAILABLE or _timed_out(error):
                    raise
                self._monitor.unreachable(error)
            except (asyncpg.SerializationError, asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
                # A hot standby cancels a read that conflicts with replaying (vacuum's cleanup of rows
                # it still sees), and lacks for a moment what a migration applied at start created:
                # both rare and passing, and the primary answers this one at once.
                pass
        return await read(self._primary)
