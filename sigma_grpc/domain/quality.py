"""Signal-quality statistics: what a trader judges a strategy by, from rows storage returns.

Plain functions over closed signals, time-bucket counts and gate counts; no I/O.
A *win* is a closed signal with outcome_pnl > 0, a *loss* one with
outcome_pnl < 0, a breakeven (0) is neither. Closed signals are ordered by
their close time, ties by id, wherever the order matters (drawdown, streaks).
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import reduce
from itertools import chain
from typing import NamedTuple

# The fewest closed signals a bucket needs before its rates are worth reading.
MIN_CLOSED = 10
# z of a two-sided 95 % interval.
_Z95 = 1.959963984540054

DEFAULT_AGREEMENT_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_EFFECTIVE_K_EDGES = (1.0, 2.0, 3.0, 4.0, 6.0, 10.0)
DEFAULT_TRADER_COUNT_EDGES = (1.0, 3.0, 5.0, 10.0, 20.0, 50.0)
MAX_EDGES = 50
DEFAULT_TOP_COMBINATIONS = 10
MAX_TOP_COMBINATIONS = 100
# Near-miss distance bins, as fractions of the threshold: [0, 0.01), [0.01, 0.02), ..., [1, inf).
NEAR_MISS_EDGES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class BucketWidth(enum.Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


class GateDirection(enum.Enum):
    """Which side of its threshold makes a gate fail."""

    UNKNOWN = "unknown"
    MIN = "min"  # a value below the threshold fails
    MAX = "max"  # a value above the threshold fails


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson_interval(wins: int, n: int) -> Interval | None:
    """The 95 % Wilson score interval of wins/n; None when n is 0."""
    if n <= 0:
        return None
    p = wins / n
    z2 = _Z95 * _Z95
    denominator = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At p = 0 or 1 the bound on that side is exactly 0 or 1; floats would miss it by an ulp.
    low = 0.0 if wins == 0 else max(0.0, center - half)
    high = 1.0 if wins == n else min(1.0, center + half)
    return Interval(low, high)


# -- closed signals: the GetStats additions ---------------------------------------------------------


# outcome_r_multiple's scale: R in whole ten-thousandths, so curves add up exactly.
R_UNIT = Decimal("0.0001")


class Trade(NamedTuple):
    """A closed signal as the sequence figures read it; its kind is the sign of its P&L."""

    r_units: int  # R in ten-thousandths
    r: Decimal
    pnl: Decimal


@dataclass(frozen=True, slots=True)
class ClosedStretch:
    """Closed signals in close-time order, summarised so that two stretches, one after the
    other, combine into the summary of both (`then`): GetStats' figures of a window are its
    close days' and hours' stretches combined (migration 072).

    Running totals are of R in ten-thousandths from 0 at the stretch's start; a run is
    consecutive closed signals of one kind (the sign of their P&L).
    """

    closed: int = 0
    wins: int = 0
    losses: int = 0
    r_units: int = 0  # the sum of R
    peak: int = 0  # the highest running total, the start (0) included
    trough: int = 0  # the lowest running total, the start (0) included
    drawdown: int = 0  # the largest fall of the running total from its peak so far
    best: int = 0  # the highest R (meaningless when closed is 0)
    worst: int = 0
    first_kind: int = 0  # the first signal's kind, and the length of the run it begins
    first_run: int = 0
    last_kind: int = 0  # the last signal's kind, and the length of the run it ends
    last_run: int = 0
    longest_win_run: int = 0
    longest_loss_run: int = 0
    win_r_sum: Decimal = Decimal(0)
    loss_r_sum: Decimal = Decimal(0)
    gross_win: Decimal = Decimal(0)  # the sum of winning P&L
    gross_loss: Decimal = Decimal(0)  # minus the sum of losing P&L

    @classmethod
    def of(cls, trades: Iterable[Trade]) -> ClosedStretch:
        """The summary of closed signals given in close-time order (one pass: `then` on each
        signal would build a summary per signal)."""
        closed = wins = losses = total = peak = trough = drawdown = 0
        best = worst = 0
        first_kind = first_run = last_kind = last_run = 0
        longest_win = longest_loss = 0
        win_r_sum = loss_r_sum = gross_win = gross_loss = Decimal(0)
        # Comparisons rather than max()/min(): this loop runs for every closed signal read.
        for r_units, r, pnl in trades:
            kind = 1 if pnl > 0 else -1 if pnl < 0 else 0
            closed += 1
            if closed == 1:
                best = worst = r_units
                first_kind = last_kind = kind
                first_run = last_run = 1
            else:
                if r_units > best:
                    best = r_units
                elif r_units < worst:
                    worst = r_units
                if kind == last_kind:
                    last_run += 1
                    if first_run == closed - 1:
                        first_run = closed
                else:
                    last_kind, last_run = kind, 1
            total += r_units
            if total > peak:
                peak = total
            elif total < trough:
                trough = total
            drawdown = max(drawdown, peak - total)
            if kind == 1:
                wins += 1
                win_r_sum += r
                gross_win += pnl
                longest_win = max(longest_win, last_run)
            elif kind == -1:
                losses += 1
                loss_r_sum += r
                gross_loss -= pnl
                longest_loss = max(longest_loss, last_run)
        return cls(
            closed=closed,
            wins=wins,
            losses=losses,
            r_units=total,
            peak=peak,
            trough=trough,
            drawdown=drawdown,
            best=best,
            worst=worst,
            first_kind=first_kind,
            first_run=first_run,
            last_kind=last_kind,
            last_run=last_run,
            longest_win_run=longest_win,
            longest_loss_run=longest_loss,
            win_r_sum=win_r_sum,
            loss_r_sum=loss_r_sum,
            gross_win=gross_win,
            gross_loss=gross_loss,
        )

    def then(self, later: ClosedStretch) -> ClosedStretch:
        """This stretch followed by `later`."""
        if not later.closed:
            return self
        if not self.closed:
            return later
        # Runs meeting at the join make one run (a breakeven run counts for no streak).
        joined = self.last_run + later.first_run if self.last_kind == later.first_kind else 0
        return ClosedStretch(
            closed=self.closed + later.closed,
            wins=self.wins + later.wins,
            losses=self.losses + later.losses,
            r_units=self.r_units + later.r_units,
            peak=max(self.peak, self.r_units + later.peak),
            trough=min(self.trough, self.r_units + later.trough),
            # A fall across the join: from this stretch's peak to later's trough, shifted by our total.
            drawdown=max(self.drawdown, later.drawdown, self.peak - (self.r_units + later.trough)),
            best=max(self.best, later.best),
            worst=min(self.worst, later.worst),
            first_kind=self.first_kind,
            first_run=joined if joined and self.first_run == self.closed else self.first_run,
            last_kind=later.last_kind,
            last_run=joined if joined and later.last_run == later.closed else later.last_run,
            longest_win_run=max(
                self.longest_win_run, later.longest_win_run, joined if later.first_kind == 1 else 0
            ),
            longest_loss_run=max(
                self.longest_loss_run, later.longest_loss_run, joined if later.first_kind == -1 else 0
            ),
            win_r_sum=self.win_r_sum + later.win_r_sum,
            loss_r_sum=self.loss_r_sum + later.loss_r_sum,
            gross_win=self.gross_win + later.gross_win,
            gross_loss=self.gross_loss + later.gross_loss,
        )


@dataclass(frozen=True, slots=True)
class ClosedSeries:
    """One set of closed signals (the window's, or one symbol's) as storage reads it: its
    stretches in close-time order, and its holding times (decided_at → outcome_closed_at,
    microseconds) in runs of any length, each in ascending order."""

    stretches: Sequence[ClosedStretch]
    holds_us: Sequence[Sequence[int]]


@dataclass(frozen=True, slots=True)
class ClosedStats:
    """The statistics of a set of closed signals that depend on more than counts and sums."""

    avg_win_r: float = 0.0
    avg_loss_r: float = 0.0
    profit_factor: float | None = None
    max_drawdown_r: float = 0.0
    best_r: float | None = None
    worst_r: float | None = None
    longest_win_streak: int = 0
    longest_loss_streak: int = 0
    median_holding_time: timedelta | None = None


# Runs this long are bisected as they are by `median_of_runs`; shorter ones are merged first.
_LONG_RUN = 512


def median_of_runs(runs: Iterable[Sequence[int]]) -> float | None:
    """The median of the values of all runs, each run in ascending order; the mean of the two
    middle values for an even count. Found by bisecting the values, counting in each run with
    bisect: no merge of the runs (tens of thousands of values, a few dozen runs)."""
    # Short runs are merged first (cheap), so that each count below bisects only a few runs.
    runs = list(runs)
    present = [run for run in runs if len(run) >= _LONG_RUN]
    short = sorted(chain.from_iterable(run for run in runs if len(run) < _LONG_RUN))
    if short:
        present.append(short)
    count = sum(map(len, present))
    if not count:
        return None
    low, high = min(run[0] for run in present), max(run[-1] for run in present)

    def kth(k: int) -> int:
        """The (0-based) k-th smallest value."""
        lo, hi = low, high
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(bisect_right(run, mid) for run in present) > k:
                hi = mid
            else:
                lo = mid + 1
        return lo

    middle = count // 2
    if count % 2:
        return float(kth(middle))
    return (kth(middle - 1) + kth(middle)) / 2


def closed_stats(series: ClosedSeries) -> ClosedStats:
    whole = reduce(ClosedStretch.then, series.stretches, ClosedStretch())
    if not whole.closed:
        return ClosedStats()
    median_us = median_of_runs(series.holds_us)
    return ClosedStats(
        avg_win_r=float(whole.win_r_sum / whole.wins) if whole.wins else 0.0,
        avg_loss_r=float(whole.loss_r_sum / whole.losses) if whole.losses else 0.0,
        profit_factor=float(whole.gross_win / whole.gross_loss) if whole.gross_loss else None,
        max_drawdown_r=float(whole.drawdown * R_UNIT),
        best_r=float(whole.best * R_UNIT),
        worst_r=float(whole.worst * R_UNIT),
        longest_win_streak=whole.longest_win_run,
        longest_loss_streak=whole.longest_loss_run,
        median_holding_time=None if median_us is None else timedelta(microseconds=median_us),
    )


def closed_stats_by_symbol(
    closed: Mapping[str | None, ClosedSeries],
) -> tuple[ClosedStats, dict[str, ClosedStats]]:
    """The statistics of the whole set (key None) and of each symbol's part."""
    whole = closed.get(None)
    return (
        closed_stats(whole) if whole is not None else ClosedStats(),
        {symbol: closed_stats(series) for symbol, series in closed.items() if symbol is not None},
    )


# -- GetSignalQuality ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QualityQuery:
    """A validated GetSignalQuality request."""

    days: int
    symbol: str | None
    width: BucketWidth
    agreement_edges: tuple[float, ...]
    effective_k_edges: tuple[float, ...]
    trader_count_edges: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """What storage counts per time bucket (by its start)."""

    signals: int = 0
    closed: int = 0
    wins: int = 0
    r_sum: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class TimeBucket:
    start: datetime
    signals: int
    closed: int
    wins: int
    win_rate: float
    avg_r: float
    cumulative_r: float
    insufficient_data: bool


@dataclass(frozen=True, slots=True)
class StrengthBucket:
    lower: float | None  # None (with upper) for the out-of-range bucket
    upper: float | None
    closed: int
    wins: int
    win_rate: float
    interval: Interval | None
    avg_r: float
    insufficient_data: bool

    @property
    def out_of_range(self) -> bool:
        return self.lower is None


@dataclass(frozen=True, slots=True)
class StrengthBreakdown:
    edges: tuple[float, ...]
    buckets: tuple[StrengthBucket, ...]


@dataclass(frozen=True, slots=True)
class SignalQuality:
    days: int
    window_start: datetime
    width: BucketWidth
    time_series: tuple[TimeBucket, ...]
    by_agreement: StrengthBreakdown
    by_effective_k: StrengthBreakdown
    by_trader_count: StrengthBreakdown


def bucket_start(moment: datetime, width: BucketWidth) -> datetime:
    """The start of the UTC bucket holding `moment` (weeks start on Monday)."""
    moment = moment.astimezone(UTC)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if width is BucketWidth.HOUR:
        return hour
    day = hour.replace(hour=0)
    if width is BucketWidth.DAY:
        return day
    return day - timedelta(days=day.weekday())


def _step(width: BucketWidth) -> timedelta:
    return {BucketWidth.HOUR: timedelta(hours=1), BucketWidth.DAY: timedelta(days=1)}.get(
        width, timedelta(weeks=1)
    )


def time_series(
    window_start: datetime, window_end: datetime, width: BucketWidth, counts: dict[datetime, BucketCounts]
) -> tuple[TimeBucket, ...]:
    """Every bucket from the one holding `window_start` to the one holding `window_end`, empty ones
    included; `counts` holds the window's counts by bucket start (the window's part only)."""
    buckets = []
    cumulative = Decimal(0)
    start = bucket_start(window_start, width)
    # The window is [window_start, window_end): its last instant decides the last bucket, unless
    # a decision came in dated a little ahead of the clock (the skew LogDecision allows).
    last = max([bucket_start(window_end - timedelta(microseconds=1), width), *counts])
    while start <= last:
        c = counts.get(start, BucketCounts())
        cumulative += c.r_sum
        buckets.append(
            TimeBucket(
                start=start,
                signals=c.signals,
                closed=c.closed,
                wins=c.wins,
                win_rate=c.wins / c.closed if c.closed else 0.0,
                avg_r=float(c.r_sum / c.closed) if c.closed else 0.0,
                cumulative_r=float(cumulative),
                insufficient_data=c.closed < MIN_CLOSED,
            )
        )
        start += _step(width)
    return tuple(buckets)


def strength_breakdown(edges: Sequence[float], counts: Mapping[int, BucketCounts]) -> StrengthBreakdown:
    """The buckets of `edges` from storage's counts by range index: 0 for [e_0, e_1), ...,
    len(edges) - 2 for [e_(n-1), e_n] (closed at the top), len(edges) - 1 for everything else."""
    ranges = len(edges) - 1
    buckets = []
    for index in range(ranges + 1):
        inside = index < ranges
        c = counts.get(index, BucketCounts())
        buckets.append(
            StrengthBucket(
                lower=edges[index] if inside else None,
                upper=edges[index + 1] if inside else None,
                closed=c.closed,
                wins=c.wins,
                win_rate=c.wins / c.closed if c.closed else 0.0,
                interval=wilson_interval(c.wins, c.closed),
                avg_r=float(c.r_sum / c.closed) if c.closed else 0.0,
                insufficient_data=c.closed < MIN_CLOSED,
            )
        )
    return StrengthBreakdown(tuple(edges), tuple(buckets))


Strengths = tuple[StrengthBreakdown, StrengthBreakdown, StrengthBreakdown]
"""The closed signals by agreement, by effective_k and by trader_count."""


def strengths(query: QualityQuery, counts: Mapping[tuple[int, int], BucketCounts]) -> Strengths:
    """The three breakdowns from storage's counts by (measure 0-2, range index)."""
    edges = (query.agreement_edges, query.effective_k_edges, query.trader_count_edges)
    return tuple(  # type: ignore[return-value]
        strength_breakdown(e, {i: c for (m, i), c in counts.items() if m == measure})
        for measure, e in enumerate(edges)
    )


def signal_quality(
    query: QualityQuery,
    window_start: datetime,
    window_end: datetime,
    counts: dict[datetime, BucketCounts],
    by_strength: Strengths,
) -> SignalQuality:
    return SignalQuality(
        days=query.days,
        window_start=window_start,
        width=query.width,
        time_series=time_series(window_start, window_end, query.width, counts),
        by_agreement=by_strength[0],
        by_effective_k=by_strength[1],
        by_trader_count=by_strength[2],
    )


# -- GetGateAnalytics ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateQuery:
    """A validated GetGateAnalytics request."""

    days: int
    symbol: str | None
    top_combinations: int


class Side(enum.Enum):
    """Where a recorded value lies relative to its threshold."""

    BELOW = -1
    EQUAL = 0
    ABOVE = 1


@dataclass(slots=True)
class GateCounts:
    """What storage counts for one gate over the window."""

    evaluated: int = 0
    failed: int = 0
    only_failure: int = 0
    failed_without_value: int = 0
    # (passed, side) -> how many recorded values
    sides: Counter[tuple[bool, Side]] = field(default_factory=Counter)
    # (side of a failed value, near-miss bin index) -> count
    failed_bins: Counter[tuple[Side, int]] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class NearMissBin:
    lower: float
    upper: float | None
    count: int


@dataclass(frozen=True, slots=True)
class GateStats:
    name: str
    evaluated: int
    failed: int
    failure_rate: float
    only_failure: int
    direction: GateDirection
    near_misses: tuple[NearMissBin, ...]
    failed_on_passing_side: int
    failed_without_value: int


@dataclass(frozen=True, slots=True)
class GateAnalytics:
    days: int
    window_start: datetime
    gates: tuple[GateStats, ...]
    # (sorted gate names, count), most frequent first, ties by the names
    failed_together: tuple[tuple[tuple[str, ...], int], ...]
    skips_with_failures: int


def near_miss_bin(distance: float) -> int:
    """The index of the near-miss bin of a distance >= 0."""
    index = 0
    for i, edge in enumerate(NEAR_MISS_EDGES):
        if distance >= edge:
            index = i
    return index


def infer_direction(sides: Counter[tuple[bool, Side]]) -> GateDirection:
    """The failing side: where more failed values lie off the threshold; failing that, the side
    opposite to most passed values; UNKNOWN when neither decides."""
    for passed, flip in ((False, False), (True, True)):
        below, above = sides[(passed, Side.BELOW)], sides[(passed, Side.ABOVE)]
        if below != above:
            fails_below = (below > above) != flip
            return GateDirection.MIN if fails_below else GateDirection.MAX
        if below or above:
            return GateDirection.UNKNOWN
    return GateDirection.UNKNOWN


def gate_stats(name: str, counts: GateCounts) -> GateStats:
    sides, failed_bins = counts.sides, counts.failed_bins
    direction = infer_direction(sides)
    failing_side = {GateDirection.MIN: Side.BELOW, GateDirection.MAX: Side.ABOVE}.get(direction)
    bins: list[NearMissBin] = []
    on_passing_side = 0
    if failing_side is not None:
        for index, lower in enumerate(NEAR_MISS_EDGES):
            upper = NEAR_MISS_EDGES[index + 1] if index + 1 < len(NEAR_MISS_EDGES) else None
            count = failed_bins[(failing_side, index)] + failed_bins[(Side.EQUAL, index)]
            bins.append(NearMissBin(lower, upper, count))
        passing_side = Side.ABOVE if failing_side is Side.BELOW else Side.BELOW
        on_passing_side = sum(n for (side, _), n in failed_bins.items() if side is passing_side)
    return GateStats(
        name=name,
        evaluated=counts.evaluated,
        failed=counts.failed,
        failure_rate=counts.failed / counts.evaluated if counts.evaluated else 0.0,
        only_failure=counts.only_failure,
        direction=direction,
        near_misses=tuple(bins),
        failed_on_passing_side=on_passing_side,
        failed_without_value=counts.failed_without_value,
    )


def gate_analytics(
    query: GateQuery,
    window_start: datetime,
    gates: dict[str, GateCounts],
    combinations: dict[tuple[str, ...], int],
) -> GateAnalytics:
    stats = sorted((gate_stats(name, c) for name, c in gates.items()), key=lambda g: (-g.failed, g.name))
    ranked = sorted(combinations.items(), key=lambda item: (-item[1], item[0]))
    return GateAnalytics(
        days=query.days,
        window_start=window_start,
        gates=tuple(stats),
        failed_together=tuple(ranked[: query.top_combinations]),
        skips_with_failures=sum(combinations.values()),
    )
