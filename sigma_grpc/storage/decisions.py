"""All SQL of the decision log."""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import astuple, dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from itertools import chain
from typing import Any, TypeVar

import asyncpg
import orjson

from sigma_grpc.domain.errors import DomainError
from sigma_grpc.domain.models import (
    ClosedSetKey,
    Counts,
    Decision,
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
    StatsRows,
)
from sigma_grpc.domain.quality import (
    BucketCounts,
    BucketWidth,
    ClosedSeries,
    ClosedStretch,
    GateCounts,
    GateQuery,
    QualityQuery,
    Side,
    Trade,
    bucket_start,
)
from sigma_grpc.domain.recent import Recent
from sigma_grpc.storage.pool import Connection, Database

_COLUMNS = """
    id, created_at, decided_at, request_id, symbol, direction, decision_type, trader_count,
    agreement_pct, effective_k, avg_confidence, ev_estimate, price_at_decision, gates,
    risk_checks, reasoning, outcome_pnl, outcome_r_multiple, outcome_closed_at
"""

_OUTCOME_WHERE = {
    OutcomeFilter.PENDING: "decision_type = 'signal' AND outcome_pnl IS NULL",
    OutcomeFilter.CLOSED: "decision_type = 'signal' AND outcome_pnl IS NOT NULL",
    OutcomeFilter.WIN: "outcome_pnl > 0",
    OutcomeFilter.LOSS: "outcome_pnl < 0",
}


def _gate_json(gate: Gate) -> dict[str, Any]:
    return {"name": gate.name, "passed": gate.passed, "value": gate.value, "threshold": gate.threshold}


def _risk_json(check: RiskCheck) -> dict[str, Any]:
    return {"name": check.name, "passed": check.passed, "value": check.value, "limit": check.limit}


# Enum lookups by value through a dict: calling the enum class costs more, once per row.
_DIRECTIONS = {d.value: d for d in Direction}
_DECISION_TYPES = {t.value: t for t in DecisionType}


def _decision(row: asyncpg.Record) -> Decision:
    return Decision(
        id=row["id"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
        request_id=row["request_id"],
        symbol=row["symbol"],
        direction=_DIRECTIONS[row["direction"]],
        decision_type=_DECISION_TYPES[row["decision_type"]],
        trader_count=row["trader_count"],
        agreement_pct=row["agreement_pct"],
        effective_k=row["effective_k"],
        avg_confidence=row["avg_confidence"],
        ev_estimate=row["ev_estimate"],
        price_at_decision=row["price_at_decision"],
        # Positional: a page builds a few hundred of these.
        gates=tuple(Gate(g["name"], g["passed"], g.get("value"), g.get("threshold")) for g in row["gates"]),
        risk_checks=tuple(
            RiskCheck(c["name"], c["passed"], c.get("value"), c.get("limit")) for c in row["risk_checks"]
        ),
        reasoning=row["reasoning"],
        outcome_pnl=row["outcome_pnl"],
        outcome_r_multiple=row["outcome_r_multiple"],
        outcome_closed_at=row["outcome_closed_at"],
    )


# What the database adds to an inserted decision; the rest is what was inserted.
_ADDED = "id, created_at, decided_at"


def _stored(entry: ToInsert, added: asyncpg.Record) -> Decision:
    """The decision `entry` became, without reading back what was just written."""
    new = entry.new
    return Decision(
        id=added["id"],
        created_at=added["created_at"],
        decided_at=added["decided_at"],
        request_id=new.request_id,
        symbol=new.symbol,
        direction=new.direction,
        decision_type=new.decision_type,
        trader_count=new.trader_count,
        agreement_pct=new.agreement_pct,
        effective_k=new.effective_k,
        avg_confidence=new.avg_confidence,
        ev_estimate=new.ev_estimate,
        price_at_decision=new.price_at_decision,
        gates=new.gates,
        risk_checks=new.risk_checks,
        reasoning=entry.reasoning,
    )


def _insert_values(entry: ToInsert) -> tuple[Any, ...]:
    """An entry's values, in the column order both inserts name them (symbol ... decided_at)."""
    new = entry.new
    return (
        new.symbol,
        new.direction.value,
        new.decision_type.value,
        new.trader_count,
        new.agreement_pct,
        new.effective_k,
        new.avg_confidence,
        new.ev_estimate,
        new.price_at_decision,
        [_gate_json(g) for g in new.gates],
        [_risk_json(c) for c in new.risk_checks],
        entry.reasoning,
        new.request_id,
        entry.request_hash if new.request_id is not None else None,
        new.decided_at,
    )


def _filter_sql(f: DecisionFilter, args: list[Any]) -> list[str]:
    """WHERE fragments for the filters; only set filters appear, so each query can use its index."""

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = []
    if f.symbol is not None:
        where.append(f"symbol = {param(f.symbol)}")
    if f.decision_type is not None:
        where.append(f"decision_type = {param(f.decision_type.value)}")
    if f.direction is not None:
        where.append(f"direction = {param(f.direction.value)}")
    if f.outcome is not None:
        where.append(_OUTCOME_WHERE[f.outcome])
    if f.start_time is not None:
        where.append(f"decided_at >= {param(f.start_time)}")
    if f.end_time is not None:
        where.append(f"decided_at < {param(f.end_time)}")
    return where


@dataclass(frozen=True, slots=True)
class ToInsert:
    """One entry of a batch: a validated decision, its reasoning, and its request hash (with a request_id)."""

    new: NewDecision
    reasoning: str
    request_hash: bytes | None


@dataclass(frozen=True, slots=True)
class Inserted:
    """What an insert did: stored `decision`, or found the row that already had its request_id.

    `replayed` is True in the second case, with `request_hash` the stored row's
    hash (None for rows stored before hashes were kept).
    """

    decision: Decision
    replayed: bool
    request_hash: bytes | None


# The closed signals: what the partial indexes of migration 066 hold.
_CLOSED_SIGNALS = "decision_type = 'signal' AND outcome_pnl IS NOT NULL"
# A closed signal's part of its bucket's closed_fingerprint (migration 071); 0 for other rows.
_CLOSED_HASH = """decision_closed_hash(id, symbol, decision_type, decided_at, outcome_closed_at, outcome_pnl,
                                       outcome_r_multiple, agreement_pct, effective_k, trader_count)"""
# $1 the window in days, $2 its end or NULL for the database's NOW().
_WINDOW_START = "(COALESCE($2::timestamptz, NOW()) - make_interval(days => $1::int))"
# decision_gate_entries' side of a gate recorded without a value or a threshold.
_NO_VALUE = 2


# decision_close_summaries' columns (migration 072), as `_stretch` reads them.
_SUMMARY_COLUMNS = """
    s.closed, s.wins, s.losses, s.r_units, s.peak, s.trough, s.drawdown, s.best, s.worst, s.first_kind,
    s.first_run, s.last_kind, s.last_run, s.longest_win_run, s.longest_loss_run, s.win_r_sum,
    s.loss_r_sum, s.gross_win, s.gross_loss, s.holds_us
"""
# A closed signal as `_trade` reads it, and its holding time in microseconds.
_TRADE_COLUMNS = """
    symbol, (outcome_r_multiple * 10000)::int8 AS r_units, outcome_r_multiple AS r, outcome_pnl AS pnl,
    ((extract(epoch FROM outcome_closed_at) - extract(epoch FROM decided_at)) * 1000000)::int8 AS hold_us
"""
_STRETCH_FIELDS = tuple(f.name for f in fields(ClosedStretch))
# Per close bucket (span 1 an hour, 24 a day) and symbol ('' for all symbols, unless `groups` says
# otherwise): the closed_fingerprint of its closed signals (migration 072), for the buckets matching
# `where`.
_CLOSE_BUCKETS = """
    SELECT span, bucket, COALESCE(symbol, '') AS symbol, sum(closed_fingerprint) AS fingerprint
    FROM decision_close_stats WHERE {where}
    GROUP BY GROUPING SETS ({groups})
    HAVING sum(closed) <> 0
"""
_WITH_ALL_SYMBOLS = "(span, bucket, symbol), (span, bucket)"


def _stretch(row: asyncpg.Record) -> ClosedStretch:
    return ClosedStretch(*[row[name] for name in _STRETCH_FIELDS])


def _trade(row: asyncpg.Record) -> Trade:
    return Trade(row["r_units"], row["r"], row["pnl"])


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


async def _kept_or_read(
    kept: Recent[K, V], keys: Sequence[K], read: Callable[[list[K]], Awaitable[dict[K, V]]]
) -> dict[K, V]:
    """The values of `keys`: those `kept` has, and the others from one `read` of all of them
    (then kept too)."""
    found: dict[K, V] = {}
    for key in keys:
        if (value := kept.get(key)) is not None:
            found[key] = value
    missing = [key for key in keys if key not in found]
    if missing:
        fresh = await read(missing)
        for key in missing:
            kept.put(key, fresh[key])
            found[key] = fresh[key]
    return found


def _gate_counts(entries: Counter[_GateEntry]) -> dict[str, GateCounts]:
    """Per gate, what GetGateAnalytics reports, from the window's gate results."""
    gates: dict[str, GateCounts] = {}
    for (name, passed, side_value, bin_index, alone), n in entries.items():
        if not n:
            continue
        counts = gates.get(name)
        if counts is None:
            counts = gates[name] = GateCounts()
        counts.evaluated += n
        if not passed:
            counts.failed += n
            counts.only_failure += n if alone else 0
        if side_value == _NO_VALUE:
            counts.failed_without_value += 0 if passed else n
            continue
        side = Side(side_value)
        counts.sides[(passed, side)] += n
        if not passed:
            counts.failed_bins[(side, bin_index)] += n
    return gates


# A window's edges as the rollups cut it (migrations 065, 068): CTE `edges` holds its start ($1
# days before $2, or NOW()), the hour it starts in (`hour_start`), the first hour boundary at or
# after it (`hour_end`) and the first day boundary at or after it (`days`).
_WINDOW_EDGES = """
    edges AS (
        SELECT start,
               decision_stats_bucket(start, 1::smallint) AS hour_start,
               decision_stats_bucket(start + INTERVAL '1 hour' - tick, 1::smallint) AS hour_end,
               decision_stats_bucket(start + INTERVAL '24 hours' - tick, 24::smallint) AS days
        FROM (SELECT COALESCE($2::timestamptz, NOW()) - make_interval(days => $1::int) AS start,
                     INTERVAL '1 microsecond' AS tick) AS window_start
    )
"""


def _window_args(days: int, now: datetime | None, symbol: str | None) -> list[Any]:
    """The arguments of a window's statement: $1 days, $2 end, and $3 symbol when there is one."""
    return [days, now] if symbol is None else [days, now, symbol]


@dataclass(frozen=True, slots=True)
class QualityRows:
    """What storage reads for GetSignalQuality."""

    window_start: datetime
    window_end: datetime
    counts: dict[datetime, BucketCounts]
    # What identifies the window's set of closed signals (as `StatsRows.closed_key`).
    closed_key: ClosedSetKey
    # Closed signals by (measure, range index); None when the caller already had them.
    strengths: dict[tuple[int, int], BucketCounts] | None


@dataclass(frozen=True, slots=True)
class GateRows:
    """What storage reads for GetGateAnalytics."""

    window_start: datetime
    gates: dict[str, GateCounts]
    combinations: dict[tuple[str, ...], int]


# A gate result as the gate rollups count it (migration 068): (gate, passed, side, bin, alone).
_GateEntry = tuple[str, bool, int, int, bool]
# A rollup bucket as a reader sees it: span, start, symbol (None for all), content fingerprint.
_BucketKey = tuple[int, datetime, str | None, Decimal]
# Gate results and failed-gate sets summed over some buckets.
_GateSums = tuple[Counter[_GateEntry], Counter[str]]


@dataclass(frozen=True, slots=True)
class _GateBucket:
    """One rollup bucket's gate results and failed-gate sets (keys as in decision_failed_gates)."""

    entries: Counter[_GateEntry]
    combinations: Counter[str]


@dataclass(frozen=True, slots=True)
class _GateHour:
    """The decisions of an hour from `since` on, in time order: each one's gate results and, for a
    skip, its failed set. Windows starting later in the hour cut it further (their starts only
    move forward), so a first call reads only the part of the hour its window needs."""

    since: datetime
    decided_at: list[datetime]
    entries: list[tuple[_GateEntry, ...]]
    failed: list[str | None]


@dataclass(frozen=True, slots=True)
class _CountsBucket:
    """One rollup bucket's counts per symbol and decisions failing each gate."""

    by_symbol: dict[str, Counts]
    gate_failures: Counter[str]


@dataclass(slots=True)
class _CountsHour:
    """The decisions of an hour from `since` on, in time order (cut like `_GateHour`): each
    one's symbol, counts and failing gates; and the sums from the last index asked for on."""

    since: datetime
    decided_at: list[datetime]
    decisions: list[tuple[str, Counts, tuple[str, ...]]]
    _sums_from: int = -1
    _sums: tuple[dict[str, Counts], Counter[str]] = field(default_factory=lambda: ({}, Counter()))

    def sums_from(self, first: int) -> tuple[dict[str, Counts], Counter[str]]:
        """Counts per symbol and gate failures of the decisions from index `first` on (not to be
        changed by the caller). A window's start moves forward between calls: the decisions it
        passed are taken out of the last sums instead of adding up the rest again."""
        if not 0 <= self._sums_from <= first:
            by_symbol: dict[str, Counts] = {}
            failures: Counter[str] = Counter()
            for symbol, counts, failed in self.decisions[first:]:
                by_symbol.setdefault(symbol, Counts()).add(counts)
                failures.update(failed)
            self._sums = (by_symbol, failures)
        else:
            by_symbol, failures = self._sums
            for symbol, counts, failed in self.decisions[self._sums_from : first]:
                by_symbol[symbol].add(counts, -1)
                failures.subtract(failed)
        self._sums_from = first
        return self._sums


@dataclass(frozen=True, slots=True)
class _ClosesHour:
    """The closed signals closing in an hour from `since` on, in close order: win or not, R."""

    since: datetime
    closed_at: list[datetime]
    closes: list[tuple[bool, Decimal]]


@dataclass(frozen=True, slots=True)
class _WindowBuckets:
    """A window as its rollup buckets: its start and end; the buckets it covers whole (span, start
    and fingerprints: content, closed); and the hour it starts in, unless it starts on the hour."""

    start: datetime
    end: datetime
    buckets: list[tuple[int, datetime, Decimal, Decimal]]
    start_hour: tuple[datetime, Decimal, Decimal] | None


class RollupReadCache:
    """What reads of a window kept of its past rollup buckets and of the hour it starts in, by
    the buckets' fingerprints (migrations 067, 073): a bucket is read again only when it
    changed, so a dashboard's next call reads mostly today's rollup rows. One per reader,
    shared by its calls (and by a primary and its replica: same rows, same fingerprints)."""

    def __init__(self, buckets: int = 2048, gate_buckets: int = 512, hours: int = 16) -> None:
        """Sizes in entries. Measured at 1M decisions (9 symbols, 5 gates), a bucket's gate
        results take ~25 KB and its counts ~10 KB: at most ~13 and ~20 MB. A window keeps one
        bucket per day and per hour of its first day (an hourly series: one per hour)."""
        self.gate_buckets: Recent[_BucketKey, _GateBucket] = Recent(gate_buckets)
        self.gate_hours: Recent[tuple[datetime, str | None, Decimal], _GateHour] = Recent(hours)
        self.gate_sums: Recent[tuple[_BucketKey, ...], _GateSums] = Recent(hours)
        self.count_buckets: Recent[tuple[_BucketKey, Decimal], _CountsBucket] = Recent(buckets)
        self.count_hours: Recent[tuple[datetime, str | None, Decimal, Decimal], _CountsHour] = Recent(hours)
        self.close_buckets: Recent[_BucketKey, BucketCounts] = Recent(buckets)
        self.close_hours: Recent[tuple[datetime, str | None, Decimal], _ClosesHour] = Recent(hours)


class DecisionStore:
    """The decision_logs table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, entry: ToInsert) -> Inserted:
        """Store a decision, unless its request_id was used: then report the row that has it."""
        new, request_hash = entry.new, entry.request_hash
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                f"""
                INSERT INTO decision_logs (
                    symbol, direction, decision_type, trader_count, agreement_pct, effective_k,
                    avg_confidence, ev_estimate, price_at_decision, gates, risk_checks, reasoning,
                    request_id, request_hash, decided_at
                )
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                        COALESCE($15::timestamptz, NOW()))
                ON CONFLICT (request_id) DO NOTHING
                RETURNING {_ADDED}
                """,
                *_insert_values(entry),
            )
            if row is not None:
                return Inserted(_stored(entry, row), replayed=False, request_hash=request_hash)
            # The conflicting insert has committed (ON CONFLICT waited for it),
            # so this statement's fresh snapshot sees it.
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS}, request_hash FROM decision_logs WHERE request_id = $1", new.request_id
            )
            assert row is not None
            return Inserted(_decision(row), replayed=True, request_hash=row["request_hash"])

    async def insert_many(self, batch: Sequence[ToInsert]) -> list[Inserted]:
        """Store a batch in one statement; one Inserted per entry, in order.

        Like `insert` for each entry in turn: an entry whose request_id was used
        (before, or by an earlier entry of the batch) is answered with the row
        that has it. Rows get their ids here so the statement's rows can be told
        apart whatever order RETURNING gives them in.
        """
        if not batch:
            return []
        ids = [uuid.uuid4() for _ in batch]
        first_with: dict[str, int] = {}  # request_id -> the first entry carrying it
        rows: list[int] = []  # the entries offered to the INSERT
        for index, entry in enumerate(batch):
            request_id = entry.new.request_id
            if request_id is None:
                rows.append(index)
            elif request_id not in first_with:
                first_with[request_id] = index
                rows.append(index)
        columns: list[list[Any]] = [[] for _ in range(16)]
        for index in rows:
            values = list(_insert_values(batch[index]))
            # The gates and risk checks go through text[] (cast to jsonb in SQL).
            values[9], values[10] = orjson.dumps(values[9]).decode(), orjson.dumps(values[10]).decode()
            for column, value in zip(columns, (ids[index], *values), strict=True):
                column.append(value)
        async with self._db.connection() as conn:
            stored = await conn.fetch(
                f"""
                INSERT INTO decision_logs (
                    id, symbol, direction, decision_type, trader_count, agreement_pct, effective_k,
                    avg_confidence, ev_estimate, price_at_decision, gates, risk_checks, reasoning,
                    request_id, request_hash, decided_at
                )
                SELECT id, symbol, direction, decision_type, trader_count, agreement_pct, effective_k,
                       avg_confidence, ev_estimate, price_at_decision, gates::jsonb, risk_checks::jsonb,
                       reasoning, request_id, request_hash, COALESCE(decided_at, NOW())
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::numeric[],
                            $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::text[],
                            $12::text[], $13::text[], $14::text[], $15::bytea[], $16::timestamptz[])
                    AS r(id, symbol, direction, decision_type, trader_count, agreement_pct, effective_k,
                         avg_confidence, ev_estimate, price_at_decision, gates, risk_checks, reasoning,
                         request_id, request_hash, decided_at)
                -- One order for every batch, so two batches sharing request ids never wait
                -- on each other's in opposite orders (a deadlock).
                ORDER BY request_id
                ON CONFLICT (request_id) DO NOTHING
                RETURNING {_ADDED}
                """,
                *columns,
            )
            by_id = {row["id"]: row for row in stored}
            # Request ids the statement found taken: their rows have committed (ON CONFLICT
            # waited for them), so this statement's fresh snapshot sees them.
            taken = [batch[i].new.request_id for i in rows if ids[i] not in by_id]
            earlier = {
                row["request_id"]: row
                for row in (
                    await conn.fetch(
                        f"SELECT {_COLUMNS}, request_hash FROM decision_logs WHERE request_id = ANY($1)",
                        taken,
                    )
                    if taken
                    else []
                )
            }
        answers: list[Inserted] = []
        for index, entry in enumerate(batch):
            request_id = entry.new.request_id
            owner = index if request_id is None else first_with[request_id]
            if ids[owner] in by_id:
                decision = _stored(batch[owner], by_id[ids[owner]])
                if owner == index:
                    answers.append(Inserted(decision, replayed=False, request_hash=entry.request_hash))
                else:
                    answers.append(Inserted(decision, replayed=True, request_hash=batch[owner].request_hash))
            else:
                row = earlier[request_id]
                answers.append(Inserted(_decision(row), replayed=True, request_hash=row["request_hash"]))
        return answers

    async def has_any(self) -> bool:
        found: bool = await self._db.fetchval("SELECT EXISTS (SELECT 1 FROM decision_logs)")
        return found

    async def get(self, decision_id: uuid.UUID) -> Decision | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM decision_logs WHERE id = $1", decision_id)
        return None if row is None else _decision(row)

    async def list(self, query: ListQuery) -> tuple[list[Decision], bool]:
        """One page, newest first; the flag says whether more rows follow."""
        args: list[Any] = []
        where = _filter_sql(query.filter, args)
        if query.cursor is not None:
            args += [query.cursor.sort_time, query.cursor.id]
            where.append(f"(decided_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(query.page_size + 1)
        sql = (
            f"SELECT {_COLUMNS} FROM decision_logs "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            f"ORDER BY decided_at DESC, id DESC LIMIT ${len(args)}"
        )
        rows = await self._db.fetch(sql, *args)
        return [_decision(r) for r in rows[: query.page_size]], len(rows) > query.page_size

    async def stats_rows(
        self,
        query: StatsQuery,
        *,
        now: datetime | None = None,
        closed_known: Callable[[ClosedSetKey], bool] = lambda key: False,
        cache: RollupReadCache | None = None,
    ) -> StatsRows:
        """Counts per symbol, gate failures and closed signals of the window, in one snapshot.

        The window ends at the database's NOW(), or at `now` when given (tests pin it).
        The counts come from the rollups (`_counts`, what it read kept in `cache`), the
        closed signals from the close summaries and rows (`_closed_series`), unless
        `closed_known` says the caller already has the figures of this set of closed
        signals (its key).
        """
        async with (
            self._db.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            counts = await self._counts(conn, query, now, cache or RollupReadCache())
            if closed_known(counts.closed_key):
                return replace(counts, closed=None)
            closed = await self._closed_series(conn, query, now)
        return replace(counts, closed=closed)

    async def _closed_series(
        self, conn: Connection, query: StatsQuery, now: datetime | None
    ) -> dict[str | None, ClosedSeries]:
        """The window's closed signals by close day and hour, of the whole window (key None) and
        per symbol.

        A close day whose stored summaries (migration 072) were computed from exactly its closed
        signals of now (fingerprints equal), all decided inside the window, is read from them;
        the other days hour by hour, the same way; and the hours left from their rows. Run
        inside `stats_rows`' snapshot.
        """
        args = _window_args(query.days, now, query.symbol)
        only = "AND symbol = $3" if query.symbol is not None else ""
        start = _WINDOW_START
        # With a symbol, its rows are the whole window's: no all-symbols ('') rows.
        groups = "(span, bucket, symbol)" if query.symbol is not None else _WITH_ALL_SYMBOLS
        days = _CLOSE_BUCKETS.format(
            where=f"span = 24 AND bucket >= date_trunc('day', {start}, 'UTC') {only}", groups=groups
        )
        hours = _CLOSE_BUCKETS.format(
            where=f"""span = 1 AND bucket >= date_trunc('hour', {start}, 'UTC') {only}
                      AND decision_stats_bucket(bucket, 24::smallint)
                          NOT IN (SELECT bucket FROM whole_days)""",
            groups=groups,
        )
        found = f"""
            SELECT b.span, b.bucket, b.symbol, s.closed IS NOT NULL AS summarised, {_SUMMARY_COLUMNS}
            FROM {{buckets}} AS b LEFT JOIN decision_close_summaries AS s
                ON s.span = {{span}} AND s.bucket = b.bucket AND s.symbol = b.symbol
                   AND s.fingerprint = b.fingerprint AND s.earliest_decided_at >= {start}
                   AND s.bucket >= date_trunc('day', {start}, 'UTC')
        """
        summaries = await conn.fetch(
            f"""
            WITH days AS MATERIALIZED ({found.format(buckets=f"({days})", span=24)}), whole_days AS (
                SELECT bucket FROM days GROUP BY bucket HAVING bool_and(summarised)
            )
            SELECT * FROM days WHERE bucket IN (SELECT bucket FROM whole_days)
            UNION ALL
            SELECT * FROM ({found.format(buckets=f"({hours})", span=1)}) AS hours
            ORDER BY bucket
            """,
            *args,
        )
        # An hour is read from its rows for every symbol when one of its summaries cannot be used.
        unsummarised = sorted({r["bucket"] for r in summaries if not r["summarised"]})
        raw: dict[datetime, dict[str, list[tuple[Trade, int]]]] = {}
        if unsummarised:
            args.append(unsummarised)
            for r in await conn.fetch(
                f"""
                SELECT h.bucket, t.*
                FROM unnest(${len(args)}::timestamptz[]) AS h (bucket), LATERAL (
                    -- Per hour, so the close-time index is used (the decided_at one holds the window).
                    SELECT {_TRADE_COLUMNS} FROM decision_logs
                    WHERE {_CLOSED_SIGNALS} AND outcome_closed_at >= h.bucket
                          AND outcome_closed_at < h.bucket + INTERVAL '1 hour'
                          AND decided_at >= {start} {only}
                    ORDER BY outcome_closed_at, id
                ) AS t
                ORDER BY h.bucket
                """,
                *args,
            ):
                by_key = raw.setdefault(r["bucket"], {})
                trade = (_trade(r), r["hold_us"])
                by_key.setdefault(r["symbol"], []).append(trade)
                if query.symbol is None:
                    by_key.setdefault("", []).append(trade)
        # Per key ('' for all symbols): each bucket's stretch and holding times.
        stretches: dict[str, list[tuple[datetime, ClosedStretch]]] = {}
        holds: dict[str, list[Sequence[int]]] = {}
        for r in summaries:
            if r["summarised"] and r["bucket"] not in raw:
                stretches.setdefault(r["symbol"], []).append((r["bucket"], _stretch(r)))
                holds.setdefault(r["symbol"], []).append(r["holds_us"])
        for bucket, by_key in raw.items():
            for key, trades in by_key.items():
                stretches.setdefault(key, []).append((bucket, ClosedStretch.of(t for t, _ in trades)))
                holds.setdefault(key, []).append(sorted(hold for _, hold in trades))
        series = {
            key or None: ClosedSeries(
                stretches=[stretch for _, stretch in sorted(parts, key=lambda part: part[0])],
                holds_us=holds[key],
            )
            for key, parts in stretches.items()
        }
        if query.symbol is not None and query.symbol in series:
            series[None] = series[query.symbol]
        return series

    async def _window_buckets(
        self,
        conn: Connection,
        days: int,
        now: datetime | None,
        symbol: str | None,
        *,
        closes: bool = False,
        hourly: bool = False,
    ) -> _WindowBuckets:
        """The window's rollup buckets (of `symbol` or all symbols): its whole days, then the hours
        of its partial first day after the hour it starts in (`hourly`: every hour after it), and
        that hour. From decision_stats (by decision time), or decision_close_stats (`closes`: by
        close time, fingerprinted by its closed signals)."""
        only = "AND symbol = $3" if symbol is not None else ""
        table, fingerprints = (
            ("decision_close_stats", "sum(closed_fingerprint), sum(closed_fingerprint)")
            if closes
            else ("decision_stats", "sum(content_fingerprint), sum(closed_fingerprint)")
        )
        whole = (
            "span = 1 AND bucket >= (SELECT hour_end FROM edges)"
            if hourly
            else """(span = 24 AND bucket >= (SELECT days FROM edges)
                     OR span = 1 AND bucket >= (SELECT hour_end FROM edges)
                        AND bucket < (SELECT days FROM edges))"""
        )
        rows = await conn.fetch(
            f"""
            WITH {_WINDOW_EDGES}
            SELECT 'w' AS kind, start AS bucket, NULL::smallint AS span, NULL::numeric AS content,
                   NULL::numeric AS closed, COALESCE($2::timestamptz, NOW()) AS stop
            FROM edges
            UNION ALL
            SELECT 'b', bucket, span, {fingerprints}, NULL FROM {table}
            WHERE {whole} {only}
            GROUP BY span, bucket
            UNION ALL
            SELECT 'h', bucket, span, {fingerprints}, NULL FROM {table}
            WHERE span = 1 AND bucket = (SELECT hour_start FROM edges)
                  AND bucket < (SELECT start FROM edges) {only}
            GROUP BY span, bucket
            """,
            *_window_args(days, now, symbol),
        )
        window = next(r for r in rows if r["kind"] == "w")
        return _WindowBuckets(
            start=window["bucket"],
            end=window["stop"],
            buckets=[(r["span"], r["bucket"], r["content"], r["closed"]) for r in rows if r["kind"] == "b"],
            start_hour=next(
                ((r["bucket"], r["content"], r["closed"]) for r in rows if r["kind"] == "h"), None
            ),
        )

    async def _counts(
        self, conn: Connection, query: StatsQuery, now: datetime | None, cache: RollupReadCache
    ) -> StatsRows:
        """Counts per symbol and gate failures of the window, from the rollups (migration 065):
        the parts `_count_parts` reads, added up."""
        window = await self._window_buckets(conn, query.days, now, query.symbol)
        buckets, edge = await self._count_parts(conn, window, query.symbol, cache)
        by_symbol: dict[str, Counts] = {}
        failures: Counter[str] = Counter()
        for _, bucket in buckets:
            for symbol, counts in bucket.by_symbol.items():
                by_symbol.setdefault(symbol, Counts()).add(counts)
            failures.update(bucket.gate_failures)
        edge_counts, edge_failures = edge
        for symbol, counts in edge_counts.items():
            by_symbol.setdefault(symbol, Counts()).add(counts)
        failures.update(edge_failures)
        return StatsRows(
            window_start=window.start,
            by_symbol={symbol: counts for symbol, counts in by_symbol.items() if counts.total > 0},
            gate_failures={gate: n for gate, n in failures.items() if n > 0},
        )

    async def _count_parts(
        self, conn: Connection, window: _WindowBuckets, symbol: str | None, cache: RollupReadCache
    ) -> tuple[Sequence[tuple[datetime, _CountsBucket]], tuple[dict[str, Counts], Counter[str]]]:
        """The window's buckets (start, counts), read from decision_stats and decision_gate_failures
        or taken from `cache` when their fingerprints did not change; and the counts of the
        decisions of the hour it starts in from its start on, from that hour's rows (kept the
        same way, and cut at the start)."""
        keys = [((span, bucket, symbol, content), closed) for span, bucket, content, closed in window.buckets]
        found = await _kept_or_read(
            cache.count_buckets, keys, lambda missing: self._count_buckets(conn, missing, symbol)
        )
        edge: tuple[dict[str, Counts], Counter[str]] = ({}, Counter())
        if window.start_hour is not None:
            start, content, closed = window.start_hour
            hour_key = (start, symbol, content, closed)
            hour = cache.count_hours.get(hour_key)
            if hour is None or hour.since > window.start:
                hour = await self._count_hour(conn, start, window.start, symbol)
                cache.count_hours.put(hour_key, hour)
            by_symbol, failures = hour.sums_from(bisect_left(hour.decided_at, window.start))
            # Copies: the kept sums change under a concurrent call while this one awaits.
            edge = ({symbol: replace(counts) for symbol, counts in by_symbol.items()}, Counter(failures))
        return [(key[0][1], bucket) for key, bucket in found.items()], edge

    async def _close_buckets(
        self, conn: Connection, keys: Sequence[_BucketKey], symbol: str | None
    ) -> dict[_BucketKey, BucketCounts]:
        """decision_close_stats of these buckets, in the caller's snapshot."""
        args: list[Any] = [[key[0] for key in keys], [key[1] for key in keys]]
        if symbol is not None:
            args.append(symbol)
        read = {(key[0], key[1]): BucketCounts() for key in keys}
        for r in await conn.fetch(
            f"""
            SELECT span, bucket, sum(closed)::bigint AS closed, sum(wins)::bigint AS wins,
                   sum(r_multiple_sum) AS r_sum
            FROM decision_close_stats
            WHERE (span, bucket) IN (SELECT * FROM unnest($1::smallint[], $2::timestamptz[]))
                  {"AND symbol = $3" if symbol is not None else ""}
            GROUP BY span, bucket
            """,
            *args,
        ):
            read[r["span"], r["bucket"]] = BucketCounts(closed=r["closed"], wins=r["wins"], r_sum=r["r_sum"])
        return {key: read[key[0], key[1]] for key in keys}

    async def _close_parts(
        self, conn: Connection, window: _WindowBuckets, symbol: str | None, cache: RollupReadCache
    ) -> tuple[Sequence[tuple[datetime, BucketCounts]], BucketCounts]:
        """Like `_count_parts`, for a window of close times (`_window_buckets(closes=True)`):
        decision_close_stats' buckets, and the closes of the start's hour from the start on."""
        keys = [(span, bucket, symbol, fingerprint) for span, bucket, fingerprint, _ in window.buckets]
        found = await _kept_or_read(
            cache.close_buckets, keys, lambda missing: self._close_buckets(conn, missing, symbol)
        )
        edge = BucketCounts()
        if window.start_hour is not None:
            start, fingerprint, _ = window.start_hour
            hour_key = (start, symbol, fingerprint)
            hour = cache.close_hours.get(hour_key)
            if hour is None or hour.since > window.start:
                rows = await conn.fetch(
                    f"""
                    SELECT outcome_closed_at, outcome_pnl > 0 AS win, outcome_r_multiple
                    FROM decision_logs
                    WHERE {_CLOSED_SIGNALS} AND outcome_closed_at >= $2
                          AND outcome_closed_at < $1::timestamptz + INTERVAL '1 hour'
                          {"AND symbol = $3" if symbol is not None else ""}
                    ORDER BY outcome_closed_at
                    """,
                    *([start, window.start] if symbol is None else [start, window.start, symbol]),
                )
                hour = _ClosesHour(
                    since=window.start,
                    closed_at=[r["outcome_closed_at"] for r in rows],
                    closes=[(r["win"], r["outcome_r_multiple"]) for r in rows],
                )
                cache.close_hours.put(hour_key, hour)
            closes = hour.closes[bisect_left(hour.closed_at, window.start) :]
            edge = BucketCounts(
                closed=len(closes),
                wins=sum(1 for win, _ in closes if win),
                r_sum=sum((r for _, r in closes), Decimal(0)),
            )
        return [(key[1], bucket) for key, bucket in found.items()], edge

    async def _count_buckets(
        self, conn: Connection, keys: Sequence[tuple[_BucketKey, Decimal]], symbol: str | None
    ) -> dict[tuple[_BucketKey, Decimal], _CountsBucket]:
        """decision_stats and decision_gate_failures of these buckets, in the caller's snapshot."""
        spans, starts = [key[0][0] for key in keys], [key[0][1] for key in keys]
        args: list[Any] = [spans, starts] if symbol is None else [spans, starts, symbol]
        only = "AND symbol = $3" if symbol is not None else ""
        wanted = "(span, bucket) IN (SELECT * FROM unnest($1::smallint[], $2::timestamptz[]))"
        rows = await conn.fetch(
            f"""
            SELECT span, bucket, symbol AS name, sum(total)::bigint AS total, sum(signals)::bigint AS signals,
                   sum(skips)::bigint AS skips, sum(risk_rejects)::bigint AS risk_rejects,
                   sum(closed)::bigint AS closed, sum(wins)::bigint AS wins, sum(losses)::bigint AS losses,
                   sum(r_multiple_sum) AS r_multiple_sum, sum(pnl_sum) AS pnl_sum,
                   sum(closed_fingerprint) AS closed_fingerprint
            FROM decision_stats WHERE {wanted} {only}
            GROUP BY span, bucket, symbol
            UNION ALL
            SELECT span, bucket, gate, sum(failures)::bigint, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   NULL
            FROM decision_gate_failures WHERE {wanted} {only}
            GROUP BY span, bucket, gate HAVING sum(failures) <> 0
            """,
            *args,
        )
        read = {(key[0][0], key[0][1]): _CountsBucket({}, Counter()) for key in keys}
        for r in rows:
            bucket = read[r["span"], r["bucket"]]
            if r["signals"] is None:
                bucket.gate_failures[r["name"]] += r["total"]
            else:
                bucket.by_symbol[r["name"]] = Counts(
                    total=r["total"],
                    signals=r["signals"],
                    skips=r["skips"],
                    risk_rejects=r["risk_rejects"],
                    closed=r["closed"],
                    wins=r["wins"],
                    losses=r["losses"],
                    r_multiple_sum=r["r_multiple_sum"],
                    pnl_sum=r["pnl_sum"],
                    closed_fingerprint=r["closed_fingerprint"],
                )
        return {key: read[key[0][0], key[0][1]] for key in keys}

    async def _count_hour(
        self, conn: Connection, hour: datetime, since: datetime, symbol: str | None
    ) -> _CountsHour:
        """The hour's decisions from `since` on (of `symbol`, or all symbols) as the rollups count them."""
        rows = await conn.fetch(
            f"""
            SELECT decided_at, symbol, decision_type, outcome_pnl, outcome_r_multiple,
                   {_CLOSED_HASH} AS closed_hash,
                   ARRAY(SELECT DISTINCT g->>'name' FROM jsonb_array_elements(gates) AS g
                         WHERE (g->>'passed')::boolean IS FALSE AND g->>'name' IS NOT NULL) AS failed
            FROM decision_logs
            WHERE decided_at >= $2 AND decided_at < $1::timestamptz + INTERVAL '1 hour'
                  {"AND symbol = $3" if symbol is not None else ""}
            ORDER BY decided_at
            """,
            *([hour, since] if symbol is None else [hour, since, symbol]),
        )
        decisions = []
        for r in rows:
            kind, pnl = r["decision_type"], r["outcome_pnl"]
            counts = Counts(
                total=1,
                signals=int(kind == "signal"),
                skips=int(kind == "skip"),
                risk_rejects=int(kind == "risk_reject"),
                closed=int(pnl is not None),
                wins=int(pnl is not None and pnl > 0),
                losses=int(pnl is not None and pnl < 0),
                r_multiple_sum=r["outcome_r_multiple"] or Decimal(0),
                pnl_sum=pnl or Decimal(0),
                closed_fingerprint=r["closed_hash"],
            )
            decisions.append((r["symbol"], counts, tuple(r["failed"])))
        return _CountsHour(since=since, decided_at=[r["decided_at"] for r in rows], decisions=decisions)

    async def quality_rows(
        self,
        query: QualityQuery,
        *,
        now: datetime | None = None,
        strengths_known: Callable[[ClosedSetKey], bool] = lambda key: False,
        cache: RollupReadCache | None = None,
    ) -> QualityRows:
        """The window's time buckets and its closed signals by consensus strength, in one snapshot.

        Signals count in the bucket of decided_at (decision_stats), closed ones in that of
        outcome_closed_at (decision_close_stats, migration 069), both read like `_counts` (an
        hourly series from hours only: hours cannot be cut out of a day's rollup); buckets are
        UTC, weeks from Monday. The strength buckets scan the window's closed signals (migration
        066's index), unless `strengths_known` says the caller has them for this set of closed
        signals (its key, read from the rollups).
        """
        cache = cache if cache is not None else RollupReadCache()
        hourly = query.width is BucketWidth.HOUR
        async with (
            self._db.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            decided = await self._window_buckets(conn, query.days, now, query.symbol, hourly=hourly)
            count_buckets, (edge_counts, _) = await self._count_parts(conn, decided, query.symbol, cache)
            closing = await self._window_buckets(
                conn, query.days, now, query.symbol, closes=True, hourly=hourly
            )
            close_buckets, edge_closes = await self._close_parts(conn, closing, query.symbol, cache)
            by_symbol: dict[str, Counts] = {}
            for counts_of in [*(bucket.by_symbol for _, bucket in count_buckets), edge_counts]:
                for symbol, counts in counts_of.items():
                    by_symbol.setdefault(symbol, Counts()).add(counts)
            key: ClosedSetKey = tuple(
                sorted(
                    (symbol, c.closed, c.closed_fingerprint) for symbol, c in by_symbol.items() if c.closed
                )
            )
            by_strength = None
            if not strengths_known(key):
                by_strength = await self._strength_counts(conn, query, now)
        signals: Counter[datetime] = Counter()
        for start, bucket in count_buckets:
            signals[bucket_start(start, query.width)] += sum(c.signals for c in bucket.by_symbol.values())
        if decided.start_hour is not None:
            signals[bucket_start(decided.start_hour[0], query.width)] += sum(
                c.signals for c in edge_counts.values()
            )
        closes: dict[datetime, BucketCounts] = {}
        edge_close = [(closing.start_hour[0], edge_closes)] if closing.start_hour is not None else []
        for start, part in [*close_buckets, *edge_close]:
            at = bucket_start(start, query.width)
            sums = closes.get(at, BucketCounts())
            closes[at] = BucketCounts(
                closed=sums.closed + part.closed, wins=sums.wins + part.wins, r_sum=sums.r_sum + part.r_sum
            )
        return QualityRows(
            window_start=decided.start,
            window_end=decided.end,
            counts={
                at: replace(closes.get(at, BucketCounts()), signals=signals.get(at, 0))
                for at in {at for at, n in signals.items() if n}
                | {at for at, c in closes.items() if c.closed}
            },
            closed_key=key,
            strengths=by_strength,
        )

    async def _strength_counts(
        self, conn: Connection, query: QualityQuery, now: datetime | None
    ) -> dict[tuple[int, int], BucketCounts]:
        """The window's closed signals counted by (measure, range index) of their consensus strength:
        measures agreement_pct, effective_k, trader_count; indexes as `strength_breakdown` takes them."""
        args = _window_args(query.days, now, query.symbol)
        only = "AND symbol = $3" if query.symbol is not None else ""
        ranges = []
        for measure, (column, edges) in enumerate(
            (
                ("agreement_pct", query.agreement_edges),
                ("effective_k", query.effective_k_edges),
                ("trader_count", query.trader_count_edges),
            )
        ):
            args.append(list(edges))
            e = f"(${len(args)}::float8[])"
            v = f"{column}::float8"
            ranges.append(
                f"""SELECT {measure} AS measure,
                       CASE WHEN {v} < {e}[1] OR {v} > {e}[cardinality({e})] THEN cardinality({e}) - 1
                            WHEN {v} = {e}[cardinality({e})] THEN cardinality({e}) - 2
                            ELSE width_bucket({v}, {e}) - 1 END AS index,
                       outcome_pnl, outcome_r_multiple
                FROM closed"""
            )
        rows = await conn.fetch(
            f"""
            WITH closed AS MATERIALIZED (
                SELECT agreement_pct, effective_k, trader_count, outcome_pnl, outcome_r_multiple
                FROM decision_logs WHERE {_CLOSED_SIGNALS} AND decided_at >= {_WINDOW_START} {only}
            )
            SELECT measure, index, count(*) AS closed, count(*) FILTER (WHERE outcome_pnl > 0) AS wins,
                   sum(outcome_r_multiple) AS r_sum
            FROM ({" UNION ALL ".join(ranges)}) AS ranged
            GROUP BY measure, index
            """,
            *args,
        )
        return {
            (r["measure"], r["index"]): BucketCounts(closed=r["closed"], wins=r["wins"], r_sum=r["r_sum"])
            for r in rows
        }

    async def gate_rows(
        self, query: GateQuery, *, now: datetime | None = None, cache: RollupReadCache | None = None
    ) -> GateRows:
        """Per gate of the window's decisions: evaluated, failed, alone failing, where its values lie
        relative to the threshold (and, failed, in which near-miss bin); and the exact sets of gates
        that failed together in skips.

        From the rollups of migration 068: the window's whole days, then the hours of its partial
        first day after the hour it starts in, and the decisions of that hour from the start on
        (their gates expanded by decision_gate_entries). What was read of a bucket or of the start's
        hour is kept in `cache` (default: one for this call only) by its content fingerprint, so a
        dashboard's next call reads only what changed: mostly today's rollup rows.
        """
        cache = cache if cache is not None else RollupReadCache()
        async with (
            self._db.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            window = await self._window_buckets(conn, query.days, now, query.symbol)
            window_start = window.start
            keys: list[_BucketKey] = [
                (span, bucket, query.symbol, content) for span, bucket, content, _ in window.buckets
            ]
            found = await _kept_or_read(
                cache.gate_buckets, keys, lambda missing: self._gate_buckets(conn, missing, query.symbol)
            )
            hour = None
            if window.start_hour is not None:
                start, content, _ = window.start_hour
                hour_key = (start, query.symbol, content)
                hour = cache.gate_hours.get(hour_key)
                if hour is None or hour.since > window.start:
                    hour = await self._gate_hour(conn, start, window.start, query.symbol)
                    cache.gate_hours.put(hour_key, hour)
        # The sums of the buckets but the newest (the one that writes keep changing) are kept too.
        newest = max((start for _, start, _, _ in found), default=None)
        older = tuple(sorted(key for key in found if key[1] != newest))
        kept_sums = cache.gate_sums.get(older)
        if kept_sums is None:
            kept_sums = (Counter(), Counter())
            for key in older:
                kept_sums[0].update(found[key].entries)
                kept_sums[1].update(found[key].combinations)
            cache.gate_sums.put(older, kept_sums)
        entries, combinations = Counter(kept_sums[0]), Counter(kept_sums[1])
        for key, bucket in found.items():
            if key[1] == newest:
                entries.update(bucket.entries)
                combinations.update(bucket.combinations)
        if hour is not None:
            first = bisect_left(hour.decided_at, window_start)
            entries.update(chain.from_iterable(hour.entries[first:]))
            combinations.update(failed for failed in hour.failed[first:] if failed is not None)
        return GateRows(
            window_start=window_start,
            gates=_gate_counts(entries),
            combinations={tuple(failed.split(",")): n for failed, n in combinations.items() if n},
        )

    async def _gate_buckets(
        self, conn: Connection, keys: Sequence[_BucketKey], symbol: str | None
    ) -> dict[_BucketKey, _GateBucket]:
        """The gate rollups of these buckets (of `symbol`, or all symbols), read in the caller's snapshot."""
        spans, starts = [span for span, _, _, _ in keys], [start for _, start, _, _ in keys]
        args: list[Any] = [spans, starts] if symbol is None else [spans, starts, symbol]
        only = "AND symbol = $3" if symbol is not None else ""
        wanted = "(span, bucket) IN (SELECT * FROM unnest($1::smallint[], $2::timestamptz[]))"
        rows = await conn.fetch(
            f"""
            SELECT span, bucket, gate, passed, side, bin, alone, sum(n)::bigint AS n
            FROM decision_gate_stats WHERE {wanted} {only}
            GROUP BY span, bucket, gate, passed, side, bin, alone HAVING sum(n) <> 0
            UNION ALL
            SELECT span, bucket, failed, NULL, NULL, NULL, NULL, sum(n)::bigint
            FROM decision_gate_combinations WHERE {wanted} {only}
            GROUP BY span, bucket, failed HAVING sum(n) <> 0
            """,
            *args,
        )
        read = {(span, start): _GateBucket(Counter(), Counter()) for span, start, _, _ in keys}
        for r in rows:
            bucket = read[r["span"], r["bucket"]]
            if r["passed"] is None:
                bucket.combinations[r["gate"]] += r["n"]
            else:
                bucket.entries[r["gate"], r["passed"], r["side"], r["bin"], r["alone"]] += r["n"]
        return {key: read[key[0], key[1]] for key in keys}

    async def _gate_hour(
        self, conn: Connection, hour: datetime, since: datetime, symbol: str | None
    ) -> _GateHour:
        """The gates of the hour's decisions from `since` on (of `symbol`, or all symbols), expanded
        like the rollups'."""
        rows = await conn.fetch(
            f"""
            SELECT d.id, d.decided_at, d.decision_type = 'skip' AS skip,
                   array_agg(ROW(e.name, e.passed, e.side, e.bin, e.alone)) AS entries
            FROM decision_logs AS d, decision_gate_entries(d.gates) AS e
            WHERE d.decided_at >= $2 AND d.decided_at < $1::timestamptz + INTERVAL '1 hour'
                  {"AND d.symbol = $3" if symbol is not None else ""}
            GROUP BY d.id, d.decided_at, d.decision_type
            ORDER BY d.decided_at
            """,
            *([hour, since] if symbol is None else [hour, since, symbol]),
        )
        entries = [tuple((e[0], e[1], e[2], e[3], e[4]) for e in r["entries"]) for r in rows]
        return _GateHour(
            since=since,
            decided_at=[r["decided_at"] for r in rows],
            entries=entries,
            failed=[
                # decision_failed_gates' key: the distinct failed names in byte (C) order.
                ",".join(sorted({e[0] for e in decision if not e[1]}, key=lambda name: name.encode()))
                if r["skip"] and any(not e[1] for e in decision)
                else None
                for r, decision in zip(rows, entries, strict=True)
            ],
        )

    async def compact_stats(self) -> None:
        """Fold the stats rollups' stripes of past hours into one row per hour and symbol."""
        # One transaction each: a writer's triggers lock the rollups' rows in trigger name order
        # (close, gate, then decision_stats), and one transaction compacting several could
        # lock them in another.
        for compact in (
            "decision_close_stats_compact",
            "decision_gate_stats_compact",
            "decision_stats_compact",
        ):
            await self._db.execute(f"SELECT {compact}(date_trunc('hour', NOW(), 'UTC'))")

    async def refresh_close_summaries(self) -> int:
        """Compute again the close summaries (migration 072) that no longer match their bucket,
        a whole close day at a time (its day's and its hours'), newest first; returns how many days.
        A day that fails is reported (RuntimeError, after the others) without stopping the others.

        Summaries are written with the fingerprint of the rows they were computed from, read
        in the same snapshot: a reader trusts one only while that fingerprint is its bucket's,
        so a racing refresher or writer can make them stale, never wrong.
        """
        stale = [
            r["day"]
            for r in await self._db.fetch(
                f"""
                WITH buckets AS ({_CLOSE_BUCKETS.format(where="TRUE", groups=_WITH_ALL_SYMBOLS)})
                SELECT DISTINCT decision_stats_bucket(COALESCE(b.bucket, s.bucket), 24::smallint) AS day
                FROM buckets AS b FULL JOIN decision_close_summaries AS s
                    ON s.span = b.span AND s.bucket = b.bucket AND s.symbol = b.symbol
                WHERE s.fingerprint IS DISTINCT FROM b.fingerprint
                ORDER BY 1 DESC
                """
            )
        ]
        failed: list[tuple[datetime, Exception]] = []
        for day in stale:
            try:
                await self._refresh_close_day(day)
            except DomainError:  # the database is away: no other day would fare better
                raise
            except Exception as error:  # one day's failure leaves the other days' summaries to do
                failed.append((day, error))
        if failed:
            first_day, first_error = failed[0]
            raise RuntimeError(
                f"the close summaries of {len(failed)} day(s) could not be computed,"
                f" the first {first_day:%Y-%m-%d}"
            ) from first_error
        return len(stale)

    async def _refresh_close_day(self, day: datetime) -> None:
        async with self._db.connection() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                fingerprints = {
                    (r["span"], r["bucket"], r["symbol"]): r["fingerprint"]
                    for r in await conn.fetch(
                        _CLOSE_BUCKETS.format(
                            where="""(span = 24 AND bucket = $1
                                      OR span = 1 AND bucket >= $1 AND bucket < $1 + INTERVAL '1 day')""",
                            groups=_WITH_ALL_SYMBOLS,
                        ),
                        day,
                    )
                }
                trades = await conn.fetch(
                    f"""
                    SELECT decision_stats_bucket(outcome_closed_at, 1::smallint) AS hour, decided_at,
                           {_TRADE_COLUMNS}
                    FROM decision_logs
                    WHERE {_CLOSED_SIGNALS} AND outcome_closed_at >= $1
                          AND outcome_closed_at < $1 + INTERVAL '1 day'
                    ORDER BY outcome_closed_at, id
                    """,
                    day,
                )
            by_key: dict[tuple[int, datetime, str], list[asyncpg.Record]] = {}
            for t in trades:
                for key in (
                    (24, day, t["symbol"]),
                    (24, day, ""),
                    (1, t["hour"], t["symbol"]),
                    (1, t["hour"], ""),
                ):
                    by_key.setdefault(key, []).append(t)
            summaries = [
                (
                    *key,
                    fingerprints[key],
                    min(t["decided_at"] for t in rows),
                    *astuple(ClosedStretch.of(map(_trade, rows))),
                    sorted(t["hold_us"] for t in rows),
                )
                for key, rows in by_key.items()
                if key in fingerprints
            ]
            columns = (
                "span",
                "bucket",
                "symbol",
                "fingerprint",
                "earliest_decided_at",
                *_STRETCH_FIELDS,
                "holds_us",
            )
            async with conn.transaction():
                await conn.execute(
                    """
                    DELETE FROM decision_close_summaries
                    WHERE span = 24 AND bucket = $1
                       OR span = 1 AND bucket >= $1 AND bucket < $1 + INTERVAL '1 day'
                    """,
                    day,
                )
                await conn.executemany(
                    f"""
                    INSERT INTO decision_close_summaries AS s ({", ".join(columns)})
                    VALUES ({", ".join(f"${n}" for n in range(1, len(columns) + 1))})
                    ON CONFLICT (span, bucket, symbol) DO UPDATE SET
                        {", ".join(f"{name} = EXCLUDED.{name}" for name in columns[3:])}
                    """,
                    summaries,
                )

    async def record_outcome(
        self, outcome: Outcome, check: Callable[[Decision, datetime], bool]
    ) -> Decision | None:
        """Attach an outcome under a row lock.

        `check(decision, closed_at)` applies the domain's rules to the locked row
        (raising to refuse) and returns whether to write; `closed_at` is the
        outcome's time or the database's now. Returns None for an unknown id.
        """
        async with self._db.connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS}, NOW() AS now FROM decision_logs WHERE id = $1 FOR UPDATE",
                outcome.decision_id,
            )
            if row is None:
                return None
            decision = _decision(row)
            # An omitted close time is now, but never before the decision (clock skew).
            closed_at = outcome.closed_at or max(row["now"], decision.decided_at)
            if not check(decision, closed_at):
                return decision
            updated = await conn.fetchrow(
                f"""
                UPDATE decision_logs
                SET outcome_pnl = $2, outcome_r_multiple = $3, outcome_closed_at = $4
                WHERE id = $1
                RETURNING {_COLUMNS}
                """,
                outcome.decision_id,
                outcome.pnl,
                outcome.r_multiple,
                closed_at,
            )
            assert updated is not None
            return _decision(updated)
