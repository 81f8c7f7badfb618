"""Signal-quality analytics: GetStats' closed-signal figures, GetSignalQuality and GetGateAnalytics.

Three layers: the statistics by hand on small fixtures (no network), the RPCs on
a few decisions whose answers are worked out in the comments, and the RPCs
against a from-scratch SQL computation on random histories (tests further down).
"""

from __future__ import annotations

import math
import random
import statistics
import uuid
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import reduce
from itertools import accumulate, groupby, pairwise
from typing import Any

import asyncpg
import grpc
import pytest

from sigma_grpc.domain.errors import InvalidArgument
from sigma_grpc.domain.quality import (
    NEAR_MISS_EDGES,
    R_UNIT,
    BucketCounts,
    BucketWidth,
    ClosedSeries,
    ClosedStretch,
    GateCounts,
    GateDirection,
    Side,
    Trade,
    bucket_start,
    closed_stats,
    gate_stats,
    infer_direction,
    median_of_runs,
    near_miss_bin,
    strength_breakdown,
    time_series,
    wilson_interval,
)
from sigma_grpc.domain.validation import UnknownEnum, validate_gate_analytics, validate_quality
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from tests.helpers import Stub, close_signal, expect_error, field_violations, gate, log_id, signal, skip, ts

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def series(*trades: tuple[str, str], hold: timedelta = timedelta(hours=1)) -> ClosedSeries:
    """Closed signals (P&L, R) in close-time order, each held `hold`, as one stretch."""
    return ClosedSeries(
        stretches=[
            ClosedStretch.of(Trade(int(Decimal(r) / R_UNIT), Decimal(r), Decimal(p)) for p, r in trades)
        ],
        holds_us=[[hold // timedelta(microseconds=1)] * len(trades)],
    )


def stretch(r_units: list[int], kinds: list[int] | None = None) -> ClosedStretch:
    """Closed signals by their R (ten-thousandths) and kinds (default: the sign of R)."""
    kinds = kinds if kinds is not None else [(u > 0) - (u < 0) for u in r_units]
    return ClosedStretch.of(Trade(u, u * R_UNIT, Decimal(k)) for u, k in zip(r_units, kinds, strict=True))


def max_drawdown(r_units: list[int]) -> int:
    """The reference: the largest fall of the running total from its highest point so far, from 0."""
    curve = list(accumulate(r_units, initial=0))
    return max(peak - level for peak, level in zip(accumulate(curve, max), curve, strict=True))


def longest_runs(kinds: list[int]) -> tuple[int, int]:
    """The reference: the longest runs of wins (1) and of losses (-1); a breakeven ends a run."""
    longest = {1: 0, -1: 0, 0: 0}
    for kind, run in groupby(kinds):
        longest[kind] = max(longest[kind], len(list(run)))
    return longest[1], longest[-1]


# -- the statistics by hand -----------------------------------------------------------------------------


def test_closed_stats_of_a_worked_example() -> None:
    worked = series(
        ("1", "1.0"),  # cumulative 1
        ("2", "2.0"),  # 3: the peak
        ("0", "0"),  # 3: a breakeven ends the win run (2)
        ("-1", "-1.5"),  # 1.5
        ("-1", "-0.5"),  # 1.0: a loss run of 2
        ("1", "0.5"),  # 1.5
        ("-3", "-2.0"),  # -0.5: the trough, 3.5 below the peak
    )
    stats = closed_stats(worked)
    assert stats.max_drawdown_r == 3.5
    assert (stats.longest_win_streak, stats.longest_loss_streak) == (2, 2)
    assert stats.avg_win_r == pytest.approx((1 + 2 + 0.5) / 3)
    assert stats.avg_loss_r == pytest.approx((-1.5 - 0.5 - 2) / 3)
    assert stats.profit_factor == pytest.approx(4 / 5)  # gross win 1+2+1 over gross loss 1+1+3
    assert (stats.best_r, stats.worst_r) == (2.0, -2.0)
    assert stats.median_holding_time == timedelta(hours=1)


def test_the_drawdown_curve_starts_at_zero() -> None:
    # A first loss is a fall from the starting 0, not from the first trade's level.
    assert stretch([-12500, 5000]).drawdown == 12500
    assert stretch([10000, 20000]).drawdown == 0
    assert stretch([]).drawdown == 0
    assert stretch([3, -1, 5, -4, -4, 1]).drawdown == 8  # from the peak 7 down to -1


def test_a_breakeven_ends_a_streak_and_starts_none() -> None:
    def runs(kinds: list[int]) -> tuple[int, int]:
        summary = stretch([1] * len(kinds), kinds)
        return summary.longest_win_run, summary.longest_loss_run

    assert runs([1, 1, 0, 1, 0, 0, -1, -1, -1]) == (2, 3)
    assert runs([0, 0]) == (0, 0)
    assert runs([]) == (0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_stretches_combine_into_the_stretch_of_their_concatenation(seed: int) -> None:
    # GetStats reads a window as its close hours' stretches combined: any cut must give the same.
    rng = random.Random(seed)
    for _ in range(200):
        r_units = [rng.choice((-20000, -5000, 0, 1, 7500, 30000)) for _ in range(rng.randrange(0, 14))]
        kinds = [rng.choice((-1, 0, 1)) if u == 0 else (u > 0) - (u < 0) for u in r_units]
        whole = stretch(r_units, kinds)
        assert whole.drawdown == max_drawdown(r_units)
        assert (whole.longest_win_run, whole.longest_loss_run) == longest_runs(kinds)
        cuts = sorted(rng.sample(range(len(r_units) + 1), rng.randrange(0, len(r_units) + 2)))
        bounds = [0, *cuts, len(r_units)]
        parts = [stretch(r_units[a:b], kinds[a:b]) for a, b in pairwise(bounds)]
        assert reduce(ClosedStretch.then, parts, ClosedStretch()) == whole, (r_units, kinds, cuts)


def test_the_median_merges_runs_and_averages_the_middle_pair() -> None:
    assert median_of_runs([]) is None
    assert median_of_runs([[], [5]]) == 5
    assert median_of_runs([[1, 9], [4], [2, 3]]) == 3
    assert median_of_runs([[1, 9], [4, 10]]) == 6.5  # (4 + 9) / 2
    assert median_of_runs([[-3, 7, 7], [7]]) == 7
    rng = random.Random(3)
    for _ in range(300):
        runs = [sorted(rng.randrange(-50, 10**9) for _ in range(rng.randrange(0, 30))) for _ in range(5)]
        values = [v for run in runs for v in run]
        assert median_of_runs(runs) == (statistics.median(values) if values else None), runs


def test_profit_factor_is_unset_without_a_loss_and_zero_without_a_win() -> None:
    assert closed_stats(series(("5", "1"), ("0", "0"))).profit_factor is None
    assert closed_stats(series(("-5", "-1"), ("0", "0"))).profit_factor == 0.0
    empty = closed_stats(series())
    assert (empty.profit_factor, empty.best_r, empty.worst_r, empty.median_holding_time) == (None,) * 4
    assert (empty.avg_win_r, empty.avg_loss_r, empty.max_drawdown_r) == (0.0, 0.0, 0.0)


def test_wilson_interval_matches_published_values() -> None:
    # 8 of 10: 0.4902-0.9433; 0 of 10: 0-0.2775 (the usual 95 % Wilson tables).
    eight = wilson_interval(8, 10)
    assert eight is not None
    assert (round(eight.low, 4), round(eight.high, 4)) == (0.4902, 0.9433)
    none = wilson_interval(0, 10)
    assert none is not None
    assert (none.low, round(none.high, 4)) == (0.0, 0.2775)
    every = wilson_interval(10, 10)
    assert every is not None and every.high == 1.0
    assert wilson_interval(0, 0) is None


def test_strength_buckets_have_their_edges_an_out_of_range_bucket_and_a_small_sample_flag() -> None:
    counts = {
        0: BucketCounts(closed=2, wins=1, r_sum=Decimal("0")),
        2: BucketCounts(closed=12, wins=9, r_sum=Decimal("6")),
    }
    breakdown = strength_breakdown([0.5, 0.7, 1.0], counts)
    shape = [(b.lower, b.upper, b.closed, b.wins, b.out_of_range) for b in breakdown.buckets]
    assert shape == [(0.5, 0.7, 2, 1, False), (0.7, 1.0, 0, 0, False), (None, None, 12, 9, True)]
    assert [b.insufficient_data for b in breakdown.buckets] == [True, True, False]
    assert breakdown.buckets[0].win_rate == 0.5 and breakdown.buckets[2].avg_r == 0.5
    assert breakdown.buckets[1].interval is None and breakdown.buckets[2].interval == wilson_interval(9, 12)


async def test_strength_edges_hold_their_lower_edge_and_the_last_its_top(api: Stub) -> None:
    decided = datetime.now(UTC) - timedelta(hours=2)
    stamp = ts(decided)
    for effective_k in (1.0, 2.0, 2.999, 3.0, 0.5, 3.5):
        decision_id = await log_id(api, signal(effective_k=effective_k, decided_at=stamp))
        await close_signal(api, decision_id, "1", 1.0, decided + timedelta(hours=1))
    quality = await api.GetSignalQuality(pb.GetSignalQualityRequest(days=1, effective_k_edges=[1, 2, 3]))
    # [1, 2) holds 1.0; [2, 3] holds 2.0, 2.999 and 3.0; 0.5 and 3.5 are out of range.
    assert [b.closed for b in quality.by_effective_k.buckets] == [1, 3, 2]


def test_time_series_lists_empty_buckets_and_weeks_start_on_monday() -> None:
    sunday = datetime(2026, 11, 8, 23, 30, tzinfo=UTC)
    assert bucket_start(sunday, BucketWidth.WEEK) == datetime(2026, 11, 2, tzinfo=UTC)
    assert bucket_start(sunday, BucketWidth.DAY) == datetime(2026, 11, 8, tzinfo=UTC)
    assert bucket_start(sunday, BucketWidth.HOUR) == datetime(2026, 11, 8, 23, tzinfo=UTC)
    start, end = datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 4, 6, tzinfo=UTC)
    counts = {
        datetime(2026, 11, 1, tzinfo=UTC): BucketCounts(signals=2, closed=1, wins=1, r_sum=Decimal("1.5")),
        datetime(2026, 11, 3, tzinfo=UTC): BucketCounts(signals=0, closed=2, wins=0, r_sum=Decimal("-2")),
    }
    series = time_series(start, end, BucketWidth.DAY, counts)
    assert [b.start.day for b in series] == [1, 2, 3, 4]
    assert [b.cumulative_r for b in series] == [1.5, 1.5, -0.5, -0.5]
    assert [b.avg_r for b in series] == [1.5, 0.0, -1.0, 0.0]
    assert series[1].signals == 0 and series[1].insufficient_data


def test_near_miss_bins_and_gate_direction() -> None:
    assert [near_miss_bin(d) for d in (0, 0.0099, 0.01, 0.049, 0.5, 0.99, 1.0, 40)] == [
        0,
        0,
        1,
        2,
        6,
        6,
        7,
        7,
    ]
    # Failed values mostly below the threshold: the value must reach it.
    assert infer_direction(Counter({(False, Side.BELOW): 3, (False, Side.ABOVE): 1})) is GateDirection.MIN
    # No failed value off the threshold: passed values mostly below mean a maximum.
    assert infer_direction(Counter({(False, Side.EQUAL): 2, (True, Side.BELOW): 5})) is GateDirection.MAX
    assert infer_direction(Counter({(False, Side.BELOW): 1, (False, Side.ABOVE): 1})) is GateDirection.UNKNOWN
    assert infer_direction(Counter()) is GateDirection.UNKNOWN
    counts = GateCounts(
        evaluated=10,
        failed=5,
        only_failure=2,
        failed_without_value=1,
        sides=Counter({(False, Side.ABOVE): 3, (False, Side.BELOW): 1, (True, Side.BELOW): 5}),
        failed_bins=Counter({(Side.ABOVE, 0): 1, (Side.ABOVE, 3): 2, (Side.BELOW, 1): 1, (Side.EQUAL, 0): 1}),
    )
    stats = gate_stats("freshness", counts)
    assert stats.direction is GateDirection.MAX
    assert [b.count for b in stats.near_misses] == [2, 0, 0, 2, 0, 0, 0, 0]  # an equal value counts at 0
    assert stats.near_misses[-1].upper is None and stats.near_misses[3].lower == 0.05
    assert (stats.failed_on_passing_side, stats.failed_without_value, stats.failure_rate) == (1, 1, 0.5)


async def test_the_databases_near_miss_bins_are_the_domains(clean_db: asyncpg.Pool) -> None:
    # Migration 068 bins failed values in SQL; the bins' edges are NEAR_MISS_EDGES.
    distances = sorted({*NEAR_MISS_EDGES, *(e * 0.999 for e in NEAR_MISS_EDGES), 0.015, 3.0})
    for threshold in (2.0, -4.0, 0.0):
        for distance in distances:
            value = threshold - distance * (abs(threshold) or 1)
            gates = [{"name": "g", "passed": False, "value": value, "threshold": threshold}]
            row = await clean_db.fetchrow("SELECT * FROM decision_gate_entries($1::jsonb)", gates)
            assert row is not None
            expected = near_miss_bin(abs(value - threshold) / (abs(threshold) or 1))
            assert (row["bin"], row["side"], row["alone"]) == (expected, -1 if distance else 0, True), (
                distance
            )
    # Without a value or a threshold (absent or JSON null): side 2, no bin.
    for entry in (
        {"name": "g", "passed": False},
        {"name": "g", "passed": False, "value": None, "threshold": 1},
    ):
        row = await clean_db.fetchrow("SELECT * FROM decision_gate_entries($1::jsonb)", [entry])
        assert row is not None and (row["side"], row["bin"]) == (2, -1), entry


def test_requests_are_validated_field_by_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_quality(
            0,
            "BTC!",
            width=UnknownEnum(9),
            agreement_edges=[0.5],
            effective_k_edges=[1, float("inf")],
            trader_count_edges=[3, 3],
        )
    assert [v.field for v in caught.value.violations] == [
        "symbol",
        "bucket_width",
        "agreement_edges",
        "effective_k_edges",
        "trader_count_edges",
    ]
    query = validate_quality(
        None, None, width=None, agreement_edges=[], effective_k_edges=[], trader_count_edges=[]
    )
    assert (query.days, query.width, query.agreement_edges[0]) == (7, BucketWidth.DAY, 0.5)
    with pytest.raises(InvalidArgument) as caught:
        validate_gate_analytics(366, None, 101)
    assert [v.field for v in caught.value.violations] == ["days", "top_combinations"]
    assert validate_gate_analytics(None, "", None).top_combinations == 10


# -- through the API, on a few decisions --------------------------------------------------------------


async def test_the_rpcs_on_a_worked_example(api: Stub) -> None:
    now = datetime.now(UTC)
    decided = now - timedelta(hours=30)
    stamp = ts(decided)
    outcomes = [("10", 1.0, 2), ("20", 2.0, 4), ("-5", -1.0, 6)]  # pnl, r, hours held
    for agreement, (pnl, r, held) in zip((0.75, 0.85, 0.95), outcomes, strict=True):
        decision_id = await log_id(api, signal(agreement_pct=agreement, decided_at=stamp))
        await close_signal(api, decision_id, pnl, r, decided + timedelta(hours=held))
    await log_id(api, signal(decided_at=stamp))  # still open
    failing = [gate("supermajority", False, 0.69, 0.7), gate("freshness", False, 75.0, 60.0)]
    await log_id(api, skip(gates=failing, decided_at=stamp))
    await log_id(api, skip(gates=[gate("supermajority", False, 0.6, 0.7)], decided_at=stamp))
    await log_id(api, skip(gates=[gate("supermajority", False, 0.7, 0.7)], decided_at=stamp))

    totals = (await api.GetStats(pb.GetStatsRequest(days=2))).totals
    assert (totals.closed_count, totals.win_count) == (3, 2)
    assert totals.avg_win_r == 1.5 and totals.avg_loss_r == -1.0
    assert totals.profit_factor == 6.0  # 30 / 5
    assert totals.max_drawdown_r == 1.0  # 1, 3, then 2
    assert (totals.best_r, totals.worst_r) == (2.0, -1.0)
    assert (totals.longest_win_streak, totals.longest_loss_streak) == (2, 1)
    assert totals.median_holding_time.ToTimedelta() == timedelta(hours=4)
    interval = wilson_interval(2, 3)
    assert interval is not None
    assert (totals.win_rate_interval.low, totals.win_rate_interval.high) == (interval.low, interval.high)

    quality = await api.GetSignalQuality(
        pb.GetSignalQualityRequest(
            days=2, bucket_width=pb.BUCKET_WIDTH_HOUR, agreement_edges=[0.7, 0.8, 0.9, 1]
        )
    )
    assert quality.bucket_width == pb.BUCKET_WIDTH_HOUR and quality.min_closed == 10
    assert len(quality.time_series) in (48, 49)  # the window's first and last hours, and each between
    assert sum(b.signals for b in quality.time_series) == 4
    assert sum(b.closed for b in quality.time_series) == 3
    assert quality.time_series[-1].cumulative_r == 2.0
    assert [(b.closed, b.wins) for b in quality.by_agreement.buckets] == [(1, 1), (1, 1), (1, 0), (0, 0)]
    assert quality.by_agreement.buckets[-1].out_of_range
    assert list(quality.by_effective_k.edges) == [1, 2, 3, 4, 6, 10]  # the defaults
    assert [b.closed for b in quality.by_effective_k.buckets] == [0, 0, 3, 0, 0, 0]  # effective_k 3.2

    analytics = await api.GetGateAnalytics(pb.GetGateAnalyticsRequest(days=2))
    by_name = {g.name: g for g in analytics.gates}
    supermajority = by_name["supermajority"]
    # Evaluated by the 4 signals (passed) and the 3 skips (failed); alone in two of them.
    assert (supermajority.evaluated, supermajority.failed, supermajority.only_failure) == (7, 3, 2)
    assert supermajority.direction == pb.GATE_DIRECTION_MIN
    # 0.69 is 1.4 % short of 0.7, 0.6 is 14 % short, 0.7 failed at the threshold itself.
    assert [b.count for b in supermajority.near_misses] == [1, 1, 0, 0, 1, 0, 0, 0]
    freshness = by_name["freshness"]
    assert (freshness.failed, freshness.only_failure, freshness.direction) == (1, 0, pb.GATE_DIRECTION_MAX)
    assert [b.count for b in freshness.near_misses][5] == 1  # 75 is 25 % past 60: [0.2, 0.5)
    assert analytics.gates[0].name == "supermajority"  # most failures first
    assert [(list(c.gates), c.count) for c in analytics.failed_together] == [
        (["supermajority"], 2),
        (["freshness", "supermajority"], 1),
    ]
    assert analytics.skips_with_failures == 3


async def test_the_closed_figures_follow_each_new_outcome(api: Stub) -> None:
    # The figures of a set of closed signals are kept by the set's fingerprint: a new outcome
    # makes a new set, and asking twice between changes answers the same.
    decided = datetime.now(UTC) - timedelta(hours=3)
    stamp = ts(decided)
    first, second = await log_id(api, signal(decided_at=stamp)), await log_id(api, signal(decided_at=stamp))
    await close_signal(api, first, "10", 1.5, decided + timedelta(hours=1))
    before = (await api.GetStats(pb.GetStatsRequest(days=1))).totals
    assert before == (await api.GetStats(pb.GetStatsRequest(days=1))).totals
    assert (before.best_r, before.worst_r, before.longest_loss_streak) == (1.5, 1.5, 0)
    await close_signal(api, second, "-4", -2.0, decided + timedelta(hours=2))
    after = (await api.GetStats(pb.GetStatsRequest(days=1))).totals
    assert (after.best_r, after.worst_r, after.longest_loss_streak, after.max_drawdown_r) == (
        1.5,
        -2.0,
        1,
        2.0,
    )
    assert after.profit_factor == 2.5 and not before.HasField("profit_factor")
    # Another window holding the same closed signals gives the same figures.
    wider = (await api.GetStats(pb.GetStatsRequest(days=30))).totals
    assert (wider.max_drawdown_r, wider.median_holding_time) == (
        after.max_drawdown_r,
        after.median_holding_time,
    )


async def test_bad_requests_name_their_field(api: Stub) -> None:
    cases: list[tuple[Awaitable[object], str]] = [
        (api.GetSignalQuality(pb.GetSignalQualityRequest(bucket_width=7)), "bucket_width"),  # type: ignore[arg-type]
        (api.GetSignalQuality(pb.GetSignalQualityRequest(agreement_edges=[0.9, 0.8])), "agreement_edges"),
        (api.GetSignalQuality(pb.GetSignalQualityRequest(days=400)), "days"),
        (api.GetGateAnalytics(pb.GetGateAnalyticsRequest(top_combinations=-1)), "top_combinations"),
        (api.GetGateAnalytics(pb.GetGateAnalyticsRequest(symbol="no such")), "symbol"),
    ]
    for call, field in cases:
        error = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
        assert list(field_violations(error)) == [field]


async def test_an_empty_log_answers_with_zeros_and_every_bucket(api: Stub) -> None:
    quality = await api.GetSignalQuality(
        pb.GetSignalQualityRequest(days=14, bucket_width=pb.BUCKET_WIDTH_WEEK)
    )
    assert len(quality.time_series) in (3, 4)
    assert all(b.signals == 0 and b.insufficient_data for b in quality.time_series)
    assert quality.time_series[0].start.ToDatetime().weekday() == 0
    assert [b.closed for b in quality.by_agreement.buckets] == [0] * 6
    assert not quality.by_agreement.buckets[0].HasField("win_rate_interval")
    analytics = await api.GetGateAnalytics(pb.GetGateAnalyticsRequest())
    assert (list(analytics.gates), list(analytics.failed_together), analytics.days) == ([], [], 7)
    totals = (await api.GetStats(pb.GetStatsRequest())).totals
    assert not totals.HasField("profit_factor") and not totals.HasField("median_holding_time")
    assert not totals.HasField("win_rate_interval") and not totals.HasField("best_r")


# -- against a from-scratch computation on random histories ---------------------------------------------

# (name, the side that fails, threshold); None: a gate without a value.
RANDOM_GATES: list[tuple[str, GateDirection | None, float | None]] = [
    ("supermajority", GateDirection.MIN, 0.7),
    ("effective_k", GateDirection.MIN, 2.0),
    ("freshness", GateDirection.MAX, 60.0),
    ("ev_gate", GateDirection.MIN, 0.0),
    ("price_band", GateDirection.MAX, 1.0),
    ("blackout", None, None),
]


def _random_gate(
    rng: random.Random, spec: tuple[str, GateDirection | None, float | None], passed: bool
) -> pb.Gate:
    name, direction, threshold = spec
    if direction is None or threshold is None:
        return gate(name, passed)
    scale = abs(threshold) or 1.0
    roll = rng.random()
    if roll < 0.1:
        value = threshold  # at the threshold: the record says which way it went
    elif roll < 0.15 and not passed:
        value = threshold + (scale if direction is GateDirection.MIN else -scale) * rng.uniform(0.01, 0.5)
    else:
        offset = scale * rng.choice((rng.uniform(0, 0.03), rng.uniform(0, 0.4), rng.uniform(0, 3)))
        fails_above = direction is GateDirection.MAX
        value = threshold + (offset if fails_above != passed else -offset)
    return gate(name, passed, round(value, 4), threshold)


def _random_decision(rng: random.Random, decided_at: datetime) -> pb.LogDecisionRequest:
    kind = rng.choices(("skip", "signal", "risk_reject"), weights=(5, 4, 1))[0]
    specs = rng.sample(RANDOM_GATES, rng.randint(1, 4))
    fields: dict[str, Any] = {
        "symbol": rng.choice(("BTC", "ETH", "kPEPE")),
        "trader_count": rng.choice((1, 2, 3, 5, 8, 10, 20, 50, 60)),
        "agreement_pct": rng.choice((0.5, 0.6, 0.7, 1.0, round(rng.uniform(0.3, 1), 4))),
        "effective_k": rng.choice((1.0, 2.0, 10.0, round(rng.uniform(0, 12), 3))),
        "request_id": f"q-{uuid.UUID(int=rng.getrandbits(128))}",
    }
    fields["decided_at"] = ts(decided_at)
    if kind == "skip":
        failed = set(rng.sample(range(len(specs)), rng.randint(1, len(specs))))
        fields |= {
            "decision_type": pb.DECISION_TYPE_SKIP,
            "direction": pb.DIRECTION_NONE,
            "gates": [_random_gate(rng, spec, i not in failed) for i, spec in enumerate(specs)],
        }
    else:
        fields |= {
            "decision_type": pb.DECISION_TYPE_SIGNAL if kind == "signal" else pb.DECISION_TYPE_RISK_REJECT,
            "direction": rng.choice((pb.DIRECTION_LONG, pb.DIRECTION_SHORT)),
            "gates": [_random_gate(rng, spec, True) for spec in specs],
            "risk_checks": [pb.RiskCheck(name="max_exposure", passed=kind == "signal")],
        }
    return pb.LogDecisionRequest(**fields)


async def _random_history(api: Stub, rng: random.Random, now: datetime, count: int) -> None:
    """`count` decisions over 10 days; then, late, outcomes on most signals, closed up to 3 days on."""
    moments = [now - timedelta(seconds=rng.uniform(60, 10 * 86400)) for _ in range(count)]
    requests = [_random_decision(rng, at) for at in moments]
    logged = []
    for start in range(0, len(requests), 200):
        answer = await api.LogDecisions(pb.LogDecisionsRequest(decisions=requests[start : start + 200]))
        logged += [r.logged.decision for r in answer.results]
    signals = [d for d in logged if d.decision_type == pb.DECISION_TYPE_SIGNAL]
    for d in rng.sample(signals, int(len(signals) * 0.8)):
        decided = d.decided_at.ToDatetime(tzinfo=UTC)
        closed_at = min(decided + timedelta(seconds=rng.uniform(1, 3 * 86400)), now)
        pnl = rng.choice((0, round(rng.uniform(-300, 300), 2), round(rng.uniform(-300, 300), 2)))
        await close_signal(api, d.id, f"{pnl}", round(rng.uniform(-3, 5), 4) if pnl else 0.0, closed_at)


def _where(symbol: str | None, args: list[Any]) -> str:
    if symbol is None:
        return ""
    args.append(symbol)
    return f"AND symbol = ${len(args)}"


async def _expected_closed_figures(db: asyncpg.Pool, start: datetime, symbol: str | None) -> dict[str, Any]:
    """GetStats' closed-signal figures by group ('*' for all, else the symbol), in SQL alone."""
    args: list[Any] = [start]
    only = _where(symbol, args)
    rows = await db.fetch(
        f"""
        WITH c AS (
            SELECT g.grp, id, outcome_closed_at AS closed_at, decided_at, outcome_r_multiple AS r,
                   outcome_pnl AS pnl
            FROM decision_logs, LATERAL (VALUES ('*'), (symbol)) AS g(grp)
            WHERE outcome_pnl IS NOT NULL AND decided_at >= $1 {only}
        ), curve AS (
            SELECT *, sum(r) OVER w AS cum, max(sum_r) OVER w AS peak, row_number() OVER w AS n,
                   row_number() OVER (PARTITION BY grp, sign(pnl) ORDER BY closed_at, id) AS n_kind
            FROM (SELECT *, sum(r) OVER (PARTITION BY grp ORDER BY closed_at, id) AS sum_r FROM c) AS s
            WINDOW w AS (PARTITION BY grp ORDER BY closed_at, id)
        ), runs AS (
            SELECT grp, sign(pnl) AS kind, count(*) AS length FROM curve GROUP BY grp, sign(pnl), n - n_kind
        )
        SELECT grp,
               avg(r) FILTER (WHERE pnl > 0) AS avg_win_r,
               avg(r) FILTER (WHERE pnl < 0) AS avg_loss_r,
               COALESCE(sum(pnl) FILTER (WHERE pnl > 0), 0) / NULLIF(-sum(pnl) FILTER (WHERE pnl < 0), 0)
                   AS profit_factor,
               max(GREATEST(peak, 0) - cum) AS max_drawdown_r,
               max(r) AS best_r, min(r) AS worst_r,
               (SELECT COALESCE(max(length), 0) FROM runs WHERE runs.grp = curve.grp AND kind = 1)
                   AS win_run,
               (SELECT COALESCE(max(length), 0) FROM runs WHERE runs.grp = curve.grp AND kind = -1)
                   AS loss_run,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - decided_at))
                   AS median_s,
               count(*) AS n, count(*) FILTER (WHERE pnl > 0) AS wins
        FROM curve GROUP BY grp
        """,
        *args,
    )
    return {r["grp"]: r for r in rows}


def _wilson_sql(wins: int, n: int) -> tuple[float, float]:
    """The Wilson interval, written out once more from its textbook form."""
    z = 1.959963984540054
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    margin = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - margin), min(1.0, centre + margin)


def _assert_closed_figures(stats: pb.DecisionStats, expected: Any, where: object) -> None:
    if expected is None:
        assert stats.closed_count == 0 and not stats.HasField("best_r"), where
        return
    assert stats.closed_count == expected["n"], where
    assert stats.avg_win_r == pytest.approx(float(expected["avg_win_r"] or 0), abs=1e-9), where
    assert stats.avg_loss_r == pytest.approx(float(expected["avg_loss_r"] or 0), abs=1e-9), where
    if expected["profit_factor"] is None:
        assert not stats.HasField("profit_factor"), where
    else:
        assert stats.profit_factor == pytest.approx(float(expected["profit_factor"]), rel=1e-12), where
    assert stats.max_drawdown_r == pytest.approx(float(expected["max_drawdown_r"]), abs=1e-9), where
    assert (stats.best_r, stats.worst_r) == (float(expected["best_r"]), float(expected["worst_r"])), where
    assert (stats.longest_win_streak, stats.longest_loss_streak) == (
        expected["win_run"],
        expected["loss_run"],
    ), where
    median = stats.median_holding_time.ToTimedelta().total_seconds()
    assert median == pytest.approx(expected["median_s"], abs=1e-6), where
    low, high = _wilson_sql(expected["wins"], expected["n"])
    interval = stats.win_rate_interval
    assert interval.low == pytest.approx(low, abs=1e-12), where
    assert interval.high == pytest.approx(high, abs=1e-12), where


UNITS = {pb.BUCKET_WIDTH_HOUR: "hour", pb.BUCKET_WIDTH_DAY: "day", pb.BUCKET_WIDTH_WEEK: "week"}


async def _expected_series(
    db: asyncpg.Pool, start: datetime, last: datetime, unit: str, symbol: str | None
) -> list[tuple[Any, ...]]:
    args: list[Any] = [start, last, unit]
    only = _where(symbol, args)
    rows = await db.fetch(
        f"""
        WITH b AS (
            SELECT generate_series(date_trunc($3, $1::timestamptz), $2::timestamptz,
                                   ('1 ' || $3)::interval) AS bucket
        ), s AS (
            SELECT date_trunc($3, decided_at) AS bucket, count(*) AS signals FROM decision_logs
            WHERE decision_type = 'signal' AND decided_at >= $1 {only} GROUP BY 1
        ), c AS (
            SELECT date_trunc($3, outcome_closed_at) AS bucket, count(*) AS closed,
                   count(*) FILTER (WHERE outcome_pnl > 0) AS wins, sum(outcome_r_multiple) AS r
            FROM decision_logs WHERE outcome_pnl IS NOT NULL AND outcome_closed_at >= $1 {only} GROUP BY 1
        )
        SELECT b.bucket, COALESCE(signals, 0) AS signals, COALESCE(closed, 0) AS closed,
               COALESCE(wins, 0) AS wins, COALESCE(r, 0) AS r,
               sum(COALESCE(r, 0)) OVER (ORDER BY b.bucket) AS cumulative
        FROM b LEFT JOIN s USING (bucket) LEFT JOIN c USING (bucket) ORDER BY b.bucket
        """,
        *args,
    )
    return [
        (
            r["bucket"],
            r["signals"],
            r["closed"],
            r["wins"],
            pytest.approx(float(r["r"] / r["closed"]) if r["closed"] else 0.0, abs=1e-9),
            pytest.approx(float(r["cumulative"]), abs=1e-9),
            r["closed"] < 10,
        )
        for r in rows
    ]


async def _expected_strength(
    db: asyncpg.Pool, start: datetime, column: str, edges: list[float], symbol: str | None
) -> list[tuple[Any, ...]]:
    """Per range (1-based; len(edges) for out of range): closed, wins, avg R."""
    args: list[Any] = [start, edges]
    only = _where(symbol, args)
    rows = await db.fetch(
        f"""
        SELECT CASE WHEN v < e[1] OR v > e[cardinality(e)] THEN cardinality(e)
                    WHEN v = e[cardinality(e)] THEN cardinality(e) - 1
                    ELSE width_bucket(v, e) END AS bucket,
               count(*) AS closed, count(*) FILTER (WHERE outcome_pnl > 0) AS wins,
               avg(outcome_r_multiple) AS avg_r
        FROM (SELECT {column}::float8 AS v, $2::float8[] AS e, * FROM decision_logs) AS d
        WHERE outcome_pnl IS NOT NULL AND decided_at >= $1 {only}
        GROUP BY 1
        """,
        *args,
    )
    found = {r["bucket"]: r for r in rows}
    expected = []
    for bucket in range(1, len(edges) + 1):
        r = found.get(bucket)
        closed_n, wins = (r["closed"], r["wins"]) if r else (0, 0)
        avg_r = pytest.approx(float(r["avg_r"]), abs=1e-9) if r else 0.0
        expected.append((closed_n, wins, avg_r))
    return expected


async def _expected_gates(db: asyncpg.Pool, start: datetime, symbol: str | None) -> dict[str, dict[str, Any]]:
    """Per gate: evaluated, failed, only_failure, direction, near-miss counts, in SQL alone."""
    args: list[Any] = [start]
    only = _where(symbol, args)
    rows = await db.fetch(
        f"""
        WITH g AS (
            SELECT d.id, e->>'name' AS name, (e->>'passed')::boolean AS passed,
                   (e->>'value')::float8 AS value, (e->>'threshold')::float8 AS threshold,
                   (SELECT count(*) FROM jsonb_array_elements(d.gates) AS o
                    WHERE (o->>'passed')::boolean IS FALSE) AS failures
            FROM decision_logs AS d, jsonb_array_elements(d.gates) AS e
            WHERE d.decided_at >= $1 {only}
        ), dir AS (
            SELECT name,
                   count(*) FILTER (WHERE NOT passed AND value < threshold) AS failed_below,
                   count(*) FILTER (WHERE NOT passed AND value > threshold) AS failed_above,
                   count(*) FILTER (WHERE passed AND value < threshold) AS passed_below,
                   count(*) FILTER (WHERE passed AND value > threshold) AS passed_above
            FROM g GROUP BY name
        ), directed AS (
            SELECT name, CASE
                WHEN failed_below > failed_above THEN 'min'
                WHEN failed_above > failed_below THEN 'max'
                WHEN failed_below > 0 THEN NULL
                WHEN passed_above > passed_below THEN 'min'
                WHEN passed_below > passed_above THEN 'max'
                END AS direction
            FROM dir
        )
        SELECT g.name, directed.direction, count(*) AS evaluated,
               count(*) FILTER (WHERE NOT passed) AS failed,
               count(*) FILTER (WHERE NOT passed AND failures = 1) AS only_failure,
               array_agg(
                   abs(value - threshold) / CASE WHEN threshold = 0 THEN 1 ELSE abs(threshold) END
               ) FILTER (
                   WHERE NOT passed AND (value = threshold OR direction = 'min' AND value < threshold
                                         OR direction = 'max' AND value > threshold)
               ) AS distances,
               count(*) FILTER (
                   WHERE NOT passed AND (direction = 'min' AND value > threshold
                                         OR direction = 'max' AND value < threshold)
               ) AS wrong_side
        FROM g JOIN directed USING (name) GROUP BY g.name, directed.direction
        """,
        *args,
    )
    return {r["name"]: dict(r) for r in rows}


async def _expected_combinations(
    db: asyncpg.Pool, start: datetime, symbol: str | None
) -> Counter[tuple[str, ...]]:
    args: list[Any] = [start]
    only = _where(symbol, args)
    rows = await db.fetch(
        f"""
        SELECT (SELECT array_agg(e->>'name') FROM jsonb_array_elements(gates) AS e
                WHERE (e->>'passed')::boolean IS FALSE) AS failed
        FROM decision_logs WHERE decision_type = 'skip' AND decided_at >= $1 {only}
        """,
        *args,
    )
    return Counter(tuple(sorted(set(r["failed"]))) for r in rows)


DIRECTIONS = {"min": pb.GATE_DIRECTION_MIN, "max": pb.GATE_DIRECTION_MAX, None: pb.GATE_DIRECTION_UNSPECIFIED}


@pytest.mark.parametrize("seed", [11, 12])
async def test_every_figure_equals_a_from_scratch_computation(
    api: Stub, clean_db: asyncpg.Pool, seed: int
) -> None:
    rng = random.Random(seed)
    await _random_history(api, rng, datetime.now(UTC), 600)
    for days, symbol in [(1, None), (3, "BTC"), (7, None), (10, "kPEPE"), (30, "NONE")]:
        request = pb.GetStatsRequest(days=days, symbol=symbol or "")
        stats = await api.GetStats(request)
        start = stats.window_start.ToDatetime(tzinfo=UTC)
        expected = await _expected_closed_figures(clean_db, start, symbol)
        _assert_closed_figures(stats.totals, expected.get("*"), (seed, days, symbol))
        for s in stats.by_symbol:
            _assert_closed_figures(s.stats, expected.get(s.symbol), (seed, days, s.symbol))

        for width, unit in UNITS.items():
            quality = await api.GetSignalQuality(
                pb.GetSignalQualityRequest(
                    days=days, symbol=symbol or "", bucket_width=width, trader_count_edges=[2, 5, 10, 50]
                )
            )
            start = quality.window_start.ToDatetime(tzinfo=UTC)
            last = quality.time_series[-1].start.ToDatetime(tzinfo=UTC)
            series = [
                (
                    b.start.ToDatetime(tzinfo=UTC),
                    b.signals,
                    b.closed,
                    b.wins,
                    b.avg_r,
                    b.cumulative_r,
                    b.insufficient_data,
                )
                for b in quality.time_series
            ]
            assert series == await _expected_series(clean_db, start, last, unit, symbol), (days, symbol, unit)
        for column, breakdown in [
            ("agreement_pct", quality.by_agreement),
            ("effective_k", quality.by_effective_k),
            ("trader_count", quality.by_trader_count),
        ]:
            found = [(b.closed, b.wins, b.avg_r) for b in breakdown.buckets]
            edges = list(breakdown.edges)
            assert found == await _expected_strength(clean_db, start, column, edges, symbol), (column, days)
            for b in breakdown.buckets:
                if b.closed:
                    low, high = _wilson_sql(b.wins, b.closed)
                    assert b.win_rate_interval.low == pytest.approx(low, abs=1e-12)
                    assert b.win_rate_interval.high == pytest.approx(high, abs=1e-12)

        analytics = await api.GetGateAnalytics(pb.GetGateAnalyticsRequest(days=days, symbol=symbol or ""))
        start = analytics.window_start.ToDatetime(tzinfo=UTC)
        gates = await _expected_gates(clean_db, start, symbol)
        assert {g.name for g in analytics.gates} == set(gates)
        for g in analytics.gates:
            e = gates[g.name]
            assert (g.evaluated, g.failed, g.only_failure) == (e["evaluated"], e["failed"], e["only_failure"])
            assert g.direction == DIRECTIONS[e["direction"]], g.name
            bins = Counter(near_miss_bin(d) for d in e["distances"] or [])
            if e["direction"] is None:
                assert list(g.near_misses) == []
            else:
                assert [b.count for b in g.near_misses] == [bins[i] for i in range(8)], g.name
                assert g.failed_on_passing_side == e["wrong_side"], g.name
        combinations = await _expected_combinations(clean_db, start, symbol)
        top = sorted(combinations.items(), key=lambda item: (-item[1], item[0]))[:10]
        assert [(tuple(c.gates), c.count) for c in analytics.failed_together] == top
        assert analytics.skips_with_failures == sum(combinations.values())
