"""Rates and totals of the decision stats, from the counts storage aggregates and the closed signals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sigma_grpc.domain.models import Counts, StatsRows
from sigma_grpc.domain.quality import ClosedStats, Interval, closed_stats_by_symbol, wilson_interval

_PNL_SCALE = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts and rates of one set of decisions (all of them, or one symbol's)."""

    total_decisions: int
    signal_count: int
    skip_count: int
    risk_reject_count: int
    skip_rate: float
    closed_count: int
    win_count: int
    loss_count: int
    pending_count: int
    win_rate: float
    avg_r_multiple: float
    total_pnl: str
    closed_stats: ClosedStats
    win_rate_interval: Interval | None


@dataclass(frozen=True, slots=True)
class Stats:
    days: int
    window_start: datetime
    overall: Summary
    by_symbol: tuple[tuple[str, Summary], ...]
    # (gate name, failures), most frequent first, ties by name.
    gate_failures: tuple[tuple[str, int], ...]


def _ratio(numerator: int | Decimal, denominator: int) -> float:
    return float(Decimal(numerator) / denominator) if denominator else 0.0


def summarize(counts: Counts, closed: ClosedStats) -> Summary:
    return Summary(
        total_decisions=counts.total,
        signal_count=counts.signals,
        skip_count=counts.skips,
        risk_reject_count=counts.risk_rejects,
        skip_rate=_ratio(counts.skips, counts.total),
        closed_count=counts.closed,
        win_count=counts.wins,
        loss_count=counts.losses,
        pending_count=counts.signals - counts.closed,
        win_rate=_ratio(counts.wins, counts.closed),
        avg_r_multiple=_ratio(counts.r_multiple_sum, counts.closed),
        total_pnl=format(counts.pnl_sum.quantize(_PNL_SCALE), "f"),
        closed_stats=closed,
        win_rate_interval=wilson_interval(counts.wins, counts.closed),
    )


ClosedFigures = tuple[ClosedStats, dict[str, ClosedStats]]
"""The closed-signal figures of a set: all of it, and per symbol."""


def build_stats(days: int, rows: StatsRows, closed: ClosedFigures | None = None) -> Stats:
    """The stats of `rows`; `closed`, the figures of its closed signals when storage did not read them."""
    overall = Counts()
    for counts in rows.by_symbol.values():
        overall.add(counts)
    if closed is None:
        if rows.closed is None:
            raise ValueError("the closed signals were neither read nor given")
        closed = closed_stats_by_symbol(rows.closed)
    closed_overall, closed_by_symbol = closed
    return Stats(
        days=days,
        window_start=rows.window_start,
        overall=summarize(overall, closed_overall),
        by_symbol=tuple(
            (symbol, summarize(rows.by_symbol[symbol], closed_by_symbol.get(symbol, ClosedStats())))
            for symbol in sorted(rows.by_symbol)
        ),
        gate_failures=tuple(sorted(rows.gate_failures.items(), key=lambda item: (-item[1], item[0]))),
    )
