"""The decision log's use cases: validate, apply the domain's rules, store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sigma_grpc.clock import Clock, utc_now
from sigma_grpc.domain.errors import DomainError, InvalidArgument, Reason
from sigma_grpc.domain.models import ClosedSetKey, Decision, NewDecision, PageCursor
from sigma_grpc.domain.outcomes import should_write_outcome
from sigma_grpc.domain.pagination import encode_page_token
from sigma_grpc.domain.quality import (
    BucketWidth,
    GateAnalytics,
    SignalQuality,
    Strengths,
    closed_stats_by_symbol,
    gate_analytics,
    signal_quality,
    strengths,
)
from sigma_grpc.domain.reasoning import reasoning_for
from sigma_grpc.domain.recent import Lookup, Recent
from sigma_grpc.domain.stats import ClosedFigures, Stats, build_stats
from sigma_grpc.domain.validation import (
    DecisionInput,
    ListInput,
    OutcomeInput,
    UnknownEnum,
    validate_batch_size,
    validate_decision,
    validate_gate_analytics,
    validate_list,
    validate_outcome,
    validate_quality,
    validate_stats,
    validate_uuid,
)
from sigma_grpc.storage.decisions import DecisionStore, Inserted, RollupReadCache, ToInsert
from sigma_grpc.storage.replica import DecisionReads

log = logging.getLogger(__name__)

Logged = tuple[Decision, bool]
"""A stored decision, and whether the request replayed an earlier one."""


def _entry(new: NewDecision) -> ToInsert:
    request_hash = new.content_hash() if new.request_id is not None else None
    return ToInsert(new, reasoning_for(new), request_hash)


def _answer(entry: ToInsert, inserted: Inserted) -> Logged:
    """What the caller is told about a stored entry; a reused request_id is refused."""
    # Rows stored before hashes were kept (None) are taken as replays, as they were then.
    if inserted.replayed and inserted.request_hash not in (None, entry.request_hash):
        raise DomainError(
            Reason.REQUEST_ID_REUSED,
            f"request_id {entry.new.request_id!r} was already used for decision {inserted.decision.id} "
            "with other content: use a new request_id for a new decision",
        )
    return inserted.decision, inserted.replayed


class DecisionLog:
    def __init__(
        self, store: DecisionStore, clock: Clock = utc_now, *, reads: DecisionReads | None = None
    ) -> None:
        """`reads`: where ListDecisions, GetDecision and GetStats read (a replica); default `store`."""
        self._store = store
        self._reads: DecisionReads = reads or store
        self._clock = clock
        # The figures that depend on a whole set of closed signals, by the set's key (and edges).
        self._closed_figures: Recent[ClosedSetKey, ClosedFigures] = Recent()
        self._strengths: Recent[tuple[ClosedSetKey, tuple[tuple[float, ...], ...]], Strengths] = Recent()
        # What GetStats, GetSignalQuality and GetGateAnalytics read of each rollup bucket.
        self._rollup_reads = RollupReadCache()

    async def log(self, raw: DecisionInput) -> Logged:
        """Store a decision; returns it and whether the request replayed an earlier one."""
        entry = _entry(validate_decision(raw, now=self._clock()))
        return _answer(entry, await self._store.insert(entry))

    async def log_many(self, raws: Sequence[DecisionInput]) -> list[Logged | DomainError]:
        """Store a batch: for each decision, in order, what `log` would have returned or raised.

        Every valid decision is stored in one statement; an invalid one, or one
        reusing a request_id with other content, is answered with its error and
        stops nothing else.
        """
        validate_batch_size(len(raws))
        now = self._clock()
        answers: list[Logged | DomainError | None] = [None] * len(raws)
        valid: list[tuple[int, ToInsert]] = []
        for index, raw in enumerate(raws):
            try:
                valid.append((index, _entry(validate_decision(raw, now=now))))
            except InvalidArgument as error:
                answers[index] = error
        stored = await self._store.insert_many([entry for _, entry in valid])
        for (index, entry), inserted in zip(valid, stored, strict=True):
            try:
                answers[index] = _answer(entry, inserted)
            except DomainError as error:
                answers[index] = error
        return [answer for answer in answers if answer is not None]

    async def has_any(self) -> bool:
        """Whether any decision has been logged."""
        return await self._store.has_any()

    async def get(self, decision_id: str) -> Decision:
        parsed = validate_uuid("id", decision_id)
        decision = await self._reads.get(parsed)
        if decision is None and self._reads is not self._store:
            # Read-your-writes: a replica may not have replayed an id the primary just stored.
            decision = await self._store.get(parsed)
        if decision is None:
            raise DomainError(Reason.DECISION_NOT_FOUND, f"decision {parsed} not found")
        return decision

    async def list(self, raw: ListInput) -> tuple[list[Decision], str]:
        """One page and the token of the next one ("" on the last page)."""
        query = validate_list(raw)
        decisions, more = await self._reads.list(query)
        if not more:
            return decisions, ""
        last = decisions[-1]
        return decisions, encode_page_token(PageCursor(last.decided_at, last.id), query.filter)

    async def stats(self, days: int | None, symbol: str | None) -> Stats:
        query = validate_stats(days, symbol)
        known = Lookup(self._closed_figures, lambda key: key)
        rows = await self._reads.stats_rows(query, closed_known=known, cache=self._rollup_reads)
        figures = known.value
        if figures is None:
            assert rows.closed is not None
            figures = closed_stats_by_symbol(rows.closed)
            self._closed_figures.put(rows.closed_key, figures)
        return build_stats(query.days, rows, figures)

    async def signal_quality(
        self,
        days: int | None,
        symbol: str | None,
        width: BucketWidth | UnknownEnum | None,
        edges: tuple[Sequence[float], Sequence[float], Sequence[float]],
    ) -> SignalQuality:
        """GetSignalQuality; `edges` are the agreement, effective_k and trader_count edges."""
        agreement, effective_k, trader_count = edges
        query = validate_quality(
            days,
            symbol,
            width=width,
            agreement_edges=agreement,
            effective_k_edges=effective_k,
            trader_count_edges=trader_count,
        )
        used_edges = (query.agreement_edges, query.effective_k_edges, query.trader_count_edges)
        known = Lookup(self._strengths, lambda key: (key, used_edges))
        rows = await self._reads.quality_rows(query, strengths_known=known, cache=self._rollup_reads)
        by_strength = known.value
        if by_strength is None:
            assert rows.strengths is not None
            by_strength = strengths(query, rows.strengths)
            self._strengths.put((rows.closed_key, used_edges), by_strength)
        return signal_quality(query, rows.window_start, rows.window_end, rows.counts, by_strength)

    async def gate_analytics(
        self, days: int | None, symbol: str | None, top_combinations: int | None
    ) -> GateAnalytics:
        query = validate_gate_analytics(days, symbol, top_combinations)
        rows = await self._reads.gate_rows(query, cache=self._rollup_reads)
        return gate_analytics(query, rows.window_start, rows.gates, rows.combinations)

    async def warm_up(self) -> None:
        """Answer the default GetStats, GetSignalQuality and GetGateAnalytics once: a server that
        does this before it takes calls gives its first callers kept rollup reads, closed-signal
        figures and a database connection that has planned these reads already."""
        await self.stats(None, None)
        await self.signal_quality(None, None, None, ((), (), ()))
        await self.gate_analytics(None, None, None)

    async def record_outcome(self, raw: OutcomeInput) -> Decision:
        outcome = validate_outcome(raw, now=self._clock())
        decision = await self._store.record_outcome(
            outcome, lambda locked, closed_at: should_write_outcome(locked, outcome, closed_at)
        )
        if decision is None:
            raise DomainError(Reason.DECISION_NOT_FOUND, f"decision {outcome.decision_id} not found")
        return decision


# How often the stats rollups' stripes of past hours are folded together (a window then reads
# about one rollup row per hour and symbol, plus the current hour's stripes), and the close
# summaries that no longer match their hour are computed again (until then a window reads those
# hours' rows: mostly the last few minutes' closes).
STATS_MAINTENANCE_INTERVAL_S = 600.0
# A starting server answers its first calls before it competes with them for the database.
STATS_MAINTENANCE_FIRST_DELAY_S = 5.0


async def maintain_stats_periodically(store: DecisionStore, interval_s: float, first_delay_s: float) -> None:
    """Compact the stats rollups and refresh the close summaries, after `first_delay_s` seconds
    and then every `interval_s` seconds, until cancelled."""
    await asyncio.sleep(first_delay_s)
    while True:
        for task, name in (
            (store.compact_stats, "stats compaction"),
            (store.refresh_close_summaries, "close summary refresh"),
        ):
            try:
                await task()
            except DomainError as error:  # the database is away: the next round catches up
                log.warning("%s skipped: %s", name, error.message)
            except Exception:
                log.exception("%s failed", name)
        await asyncio.sleep(interval_s)
