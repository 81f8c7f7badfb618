"""GetStats from the rollups (migration 065) against a from-scratch computation over the raw rows.

Random histories are written the ways the service writes them (LogDecision and
LogDecisions from several connections at once, so the rollups' stripes differ;
outcomes recorded afterwards; rows deleted) and clustered around the windows'
starts, so the partial hour each window begins in holds rows on both sides.
Every window is then answered twice and compared exactly: by GetStats and by
the one-query aggregate over decision_logs that the rollups replace.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from sigma_grpc.api.decision_convert import stats_message
from sigma_grpc.domain.models import Counts, StatsQuery, StatsRows
from sigma_grpc.domain.quality import (
    BucketCounts,
    BucketWidth,
    GateCounts,
    GateQuery,
    QualityQuery,
    Side,
    near_miss_bin,
)
from sigma_grpc.domain.stats import build_stats
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb
from sigma_grpc.storage.decisions import DecisionStore, GateRows, RollupReadCache
from sigma_grpc.storage.pool import Database
from tests.helpers import Stub, gate, risk, ts

SYMBOLS = ("BTC", "ETH", "SOL", "kPEPE")
GATES = ("supermajority", "effective_k", "freshness", "ev_gate")
WINDOWS = (1, 2, 7, 10)


async def from_scratch(pool: asyncpg.Pool, window_start: datetime, symbol: str | None) -> StatsRows:
    """The window's counts and gate failures straight from decision_logs, in one query each."""
    where = "decided_at >= $1"
    args: list[Any] = [window_start]
    if symbol is not None:
        where += " AND symbol = $2"
        args.append(symbol)
    counts = await pool.fetch(
        f"""
        SELECT symbol, count(*) AS total,
               count(*) FILTER (WHERE decision_type = 'signal') AS signals,
               count(*) FILTER (WHERE decision_type = 'skip') AS skips,
               count(*) FILTER (WHERE decision_type = 'risk_reject') AS risk_rejects,
               count(outcome_pnl) AS closed,
               count(*) FILTER (WHERE outcome_pnl > 0) AS wins,
               count(*) FILTER (WHERE outcome_pnl < 0) AS losses,
               COALESCE(sum(outcome_r_multiple), 0) AS r_multiple_sum,
               COALESCE(sum(outcome_pnl), 0) AS pnl_sum,
               COALESCE(sum(decision_closed_hash(id, symbol, decision_type, decided_at, outcome_closed_at,
                                                 outcome_pnl, outcome_r_multiple, agreement_pct, effective_k,
                                                 trader_count)), 0) AS closed_fingerprint
        FROM decision_logs WHERE {where} GROUP BY symbol
        """,
        *args,
    )
    gates = await pool.fetch(
        f"""
        SELECT g->>'name' AS name, count(DISTINCT id) AS failures
        FROM decision_logs, jsonb_array_elements(gates) AS g
        WHERE {where} AND (g->>'passed')::boolean IS FALSE
        GROUP BY 1
        """,
        *args,
    )
    return StatsRows(
        window_start=window_start,
        by_symbol={r["symbol"]: Counts(**{k: v for k, v in r.items() if k != "symbol"}) for r in counts},
        gate_failures={r["name"]: r["failures"] for r in gates},
        closed={},
    )


async def gates_from_scratch(pool: asyncpg.Pool, window_start: datetime, symbol: str | None) -> GateRows:
    """GetGateAnalytics' counts straight from the window's gates (migration 068's rollups replace this)."""
    where = "decided_at >= $1" + (" AND symbol = $2" if symbol is not None else "")
    args: list[Any] = [window_start] if symbol is None else [window_start, symbol]
    decisions = await pool.fetch(f"SELECT gates FROM decision_logs WHERE {where}", *args)
    gates: dict[str, GateCounts] = {}
    for decision in decisions:
        entries = [g for g in decision["gates"] if isinstance(g, dict)]
        failing = {g.get("name") for g in entries if g.get("passed") is False}
        unnamed = sum(1 for g in entries if g.get("passed") is False and g.get("name") is None)
        failures = len(failing - {None}) + unnamed
        # A gate counts once per decision: as its first failed entry, else its first entry.
        chosen: dict[str, dict[str, Any]] = {}
        for g in sorted(entries, key=lambda g: g.get("passed") is not False):
            if g.get("name") is not None:
                chosen.setdefault(g["name"], g)
        for name, g in chosen.items():
            passed = g.get("passed") is not False
            # A JSON number (not a bool) or nothing.
            value, threshold = (
                g.get(key)
                if isinstance(g.get(key), int | float) and not isinstance(g.get(key), bool)
                else None
                for key in ("value", "threshold")
            )
            c = gates.setdefault(name, GateCounts())
            c.evaluated += 1
            c.failed += not passed
            c.only_failure += not passed and failures == 1
            if value is None or threshold is None:
                c.failed_without_value += not passed
                continue
            side = Side((value > threshold) - (value < threshold))
            c.sides[(passed, side)] += 1
            if not passed:
                scale = abs(threshold) or 1
                far = abs(value - threshold)
                c.failed_bins[(side, 7 if far >= scale else near_miss_bin(far / scale))] += 1
    skips = await pool.fetch(
        f"""
        SELECT (SELECT array_agg(g->>'name') FROM jsonb_array_elements(gates) AS g
                WHERE (g->>'passed')::boolean IS FALSE) AS failed
        FROM decision_logs WHERE {where} AND decision_type = 'skip'
        """,
        *args,
    )
    combinations = Counter(tuple(sorted(set(r["failed"]))) for r in skips if r["failed"])
    for c in gates.values():  # the rollups leave no zero counts behind
        c.sides = +c.sides
        c.failed_bins = +c.failed_bins
    return GateRows(window_start=window_start, gates=gates, combinations=dict(combinations))


def counts_only(rows: StatsRows) -> StatsRows:
    """The rollups' part of `rows`: the closed signals' own figures are checked in test_signal_quality.py."""
    return replace(rows, closed={})


# The closed signals' own figures (test_signal_quality.py compares them with a from-scratch computation).
CLOSED_FIGURES = [f.name for f in pb.DecisionStats.DESCRIPTOR.fields if f.number >= 13]


def without_closed_figures(answer: pb.GetStatsResponse) -> pb.GetStatsResponse:
    answer = pb.GetStatsResponse.FromString(answer.SerializeToString())
    for stats in [answer.totals, *(s.stats for s in answer.by_symbol)]:
        for name in CLOSED_FIGURES:
            stats.ClearField(name)  # type: ignore[arg-type]
    return answer


def random_decision(rng: random.Random, decided_at: datetime) -> pb.LogDecisionRequest:
    kind = rng.choices(("skip", "signal", "risk_reject"), weights=(6, 3, 1))[0]
    names = rng.sample(GATES, rng.randint(1, len(GATES)))
    fields: dict[str, Any] = {
        "symbol": rng.choice(SYMBOLS),
        "trader_count": rng.randint(1, 12),
        "agreement_pct": round(rng.random(), 4),
        "effective_k": round(rng.uniform(0, 9), 3),
        "decided_at": ts(decided_at),
        "request_id": f"r-{uuid.UUID(int=rng.getrandbits(128))}",
    }
    if kind == "skip":
        failed = set(rng.sample(names, rng.randint(1, len(names))))
        fields |= {
            "decision_type": pb.DECISION_TYPE_SKIP,
            "direction": rng.choice((pb.DIRECTION_LONG, pb.DIRECTION_NONE)),
            "gates": [gate(n, n not in failed) for n in names],
        }
    else:
        fields |= {
            "decision_type": pb.DECISION_TYPE_SIGNAL if kind == "signal" else pb.DECISION_TYPE_RISK_REJECT,
            "direction": rng.choice((pb.DIRECTION_LONG, pb.DIRECTION_SHORT)),
            "gates": [gate(n, True) for n in names],
            "risk_checks": [risk("max_exposure", kind == "signal")],
        }
    return pb.LogDecisionRequest(**fields)


def moments(rng: random.Random, now: datetime, count: int) -> list[datetime]:
    """Times over the last 11 days, a third of them within 90 minutes of a window's start,
    some exactly on the hour, a few up to 30 s ahead (the clock skew LogDecision allows)."""
    found = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.35:
            edge = now - timedelta(days=rng.choice(WINDOWS))
            found.append(edge + timedelta(seconds=rng.uniform(-5400, 5400)))
        elif pick < 0.45:
            hour = (now - timedelta(hours=rng.randint(1, 250))).replace(minute=0, second=0, microsecond=0)
            found.append(hour)
        elif pick < 0.48:
            found.append(now + timedelta(seconds=rng.uniform(0, 30)))
        else:
            found.append(now - timedelta(seconds=rng.uniform(0, 11 * 86400)))
    return found


async def write_history(api: Stub, rng: random.Random, count: int) -> list[pb.Decision]:
    """`count` decisions, written concurrently in batches and one by one."""
    requests = [random_decision(rng, at) for at in moments(rng, datetime.now(UTC), count)]
    half = count // 2
    batches = [requests[i : min(i + 40, half)] for i in range(0, half, 40)]
    singles = requests[half:]
    batched, one_by_one = await asyncio.gather(
        asyncio.gather(*(api.LogDecisions(pb.LogDecisionsRequest(decisions=b)) for b in batches)),
        asyncio.gather(*(api.LogDecision(r) for r in singles)),
    )
    decisions = [r.logged.decision for answer in batched for r in answer.results]
    return decisions + [answer.decision for answer in one_by_one]


async def record_outcomes(api: Stub, rng: random.Random, decisions: list[pb.Decision]) -> None:
    """Outcomes on 70 % of the signals decided by now, closed up to two days later (not after now)."""
    now = datetime.now(UTC)
    signals = [
        d
        for d in decisions
        if d.decision_type == pb.DECISION_TYPE_SIGNAL and d.decided_at.ToDatetime(tzinfo=UTC) <= now
    ]
    chosen = rng.sample(signals, int(len(signals) * 0.7))
    later = {d.id: timedelta(seconds=rng.uniform(0, 2 * 86400)) for d in chosen}
    await asyncio.gather(
        *(
            api.RecordOutcome(
                pb.RecordOutcomeRequest(
                    decision_id=d.id,
                    outcome_pnl=f"{rng.choice((-1, 0, 1)) * rng.uniform(0, 500):.8f}",
                    outcome_r_multiple=round(rng.uniform(-3, 5), 4),
                    outcome_closed_at=ts(min(d.decided_at.ToDatetime(tzinfo=UTC) + later[d.id], now)),
                )
            )
            for d in chosen
        )
    )


async def series_from_scratch(
    pool: asyncpg.Pool, window_start: datetime, unit: str, symbol: str | None
) -> dict[datetime, BucketCounts]:
    """GetSignalQuality's time buckets straight from decision_logs (what rollups 065 and 069 replace)."""
    only = "AND symbol = $3" if symbol is not None else ""
    args: list[Any] = [window_start, unit] if symbol is None else [window_start, unit, symbol]
    signals = await pool.fetch(
        f"""
        SELECT date_trunc($2, decided_at) AS b, count(*) AS n FROM decision_logs
        WHERE decision_type = 'signal' AND decided_at >= $1 {only} GROUP BY 1
        """,
        *args,
    )
    closes = await pool.fetch(
        f"""
        SELECT date_trunc($2, outcome_closed_at) AS b, count(*) AS n,
               count(*) FILTER (WHERE outcome_pnl > 0) AS w, sum(outcome_r_multiple) AS r
        FROM decision_logs WHERE outcome_pnl IS NOT NULL AND outcome_closed_at >= $1 {only} GROUP BY 1
        """,
        *args,
    )
    found = {r["b"]: BucketCounts(signals=r["n"]) for r in signals}
    for r in closes:
        found[r["b"]] = replace(found.get(r["b"], BucketCounts()), closed=r["n"], wins=r["w"], r_sum=r["r"])
    return found


async def assert_stats_match(api: Stub, pool: asyncpg.Pool, cache: RollupReadCache | None = None) -> None:
    """`cache`: what gate reads kept from earlier calls of the test (the rows may have changed since)."""
    store = DecisionStore(Database(pool))
    now = datetime.now(UTC)
    for days in WINDOWS:
        # The rollups' rows themselves, closed-set fingerprints included.
        found = await store.stats_rows(StatsQuery(days=days, symbol=None), now=now, cache=cache)
        assert counts_only(found) == await from_scratch(pool, now - timedelta(days=days), None), days
        gates = await store.gate_rows(
            GateQuery(days=days, symbol=None, top_combinations=10), now=now, cache=cache
        )
        expected_gates = await gates_from_scratch(pool, now - timedelta(days=days), None)
        assert gates == expected_gates, days
        for symbol in (None, "BTC", "kPEPE", "NOPE"):
            request = pb.GetStatsRequest(days=days)
            if symbol is not None:
                request.symbol = symbol
            answer = await api.GetStats(request)
            window_start = answer.window_start.ToDatetime(tzinfo=UTC)
            expected = stats_message(build_stats(days, await from_scratch(pool, window_start, symbol)))
            assert without_closed_figures(answer) == without_closed_figures(expected), (days, symbol)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stats_from_rollups_equal_a_scan_of_the_rows(
    api: Stub, clean_db: asyncpg.Pool, seed: int
) -> None:
    rng = random.Random(seed)
    decisions = await write_history(api, rng, 300)
    cache = RollupReadCache()  # kept through every change below, as a server keeps it
    await assert_stats_match(api, clean_db, cache)

    await record_outcomes(api, rng, decisions)
    await assert_stats_match(api, clean_db, cache)

    # Rows removed (a retention job, a manual fix) leave the rollups with them.
    doomed = [uuid.UUID(d.id) for d in rng.sample(decisions, 30)]
    await clean_db.execute("DELETE FROM decision_logs WHERE id = ANY($1)", doomed)
    await assert_stats_match(api, clean_db, cache)

    # A past decision's gates edited by hand: the buckets' content changes, and so the reads.
    edited = [uuid.UUID(d.id) for d in rng.sample(decisions, 30) if uuid.UUID(d.id) not in doomed]
    await clean_db.execute(
        "UPDATE decision_logs SET gates = jsonb_set(gates, '{0,name}', '\"hand_renamed\"')"
        " WHERE id = ANY($1)",
        edited,
    )
    await assert_stats_match(api, clean_db, cache)

    # Folding the stripes together changes no answer, and leaves one row per past hour and symbol.
    await DecisionStore(Database(clean_db)).compact_stats()
    await assert_stats_match(api, clean_db, cache)
    for table in (
        "decision_stats",
        "decision_gate_stats",
        "decision_gate_combinations",
        "decision_close_stats",
    ):
        striped = await clean_db.fetchval(
            f"SELECT count(*) FROM {table}"
            " WHERE stripe <> 0 AND bucket + make_interval(hours => span) <= date_trunc('hour', NOW(), 'UTC')"
        )
        assert striped == 0, table


# Where a window's start falls in its hour decides how its rows are read: on the hour (rollups
# only), in the first half (the hour counted whole, the rows before the start taken away), in the
# second half (the hour left out, the rows after the start added).
OFFSETS = (
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(minutes=10),
    timedelta(minutes=29, seconds=59, microseconds=999999),
    timedelta(minutes=30),
    timedelta(minutes=50),
    timedelta(minutes=59, seconds=59, microseconds=999999),
)


async def test_every_position_of_the_start_in_its_hour_gives_the_exact_answer(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    rng = random.Random(6)
    await record_outcomes(api, rng, await write_history(api, rng, 400))
    store = DecisionStore(Database(clean_db))
    cache = RollupReadCache()  # the start's hour is read once and cut at each offset
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # Forward as a clock moves (the start's hour is read once and cut), then back (read again).
    for offset in (*OFFSETS, *reversed(OFFSETS)):
        now = hour + offset
        for days in WINDOWS:
            for symbol in (None, "ETH"):
                found = await store.stats_rows(StatsQuery(days=days, symbol=symbol), now=now, cache=cache)
                expected = await from_scratch(clean_db, now - timedelta(days=days), symbol)
                assert counts_only(found) == expected, (offset, days, symbol)
                query = GateQuery(days=days, symbol=symbol, top_combinations=10)
                gates = await store.gate_rows(query, now=now, cache=cache)
                assert gates == await gates_from_scratch(clean_db, now - timedelta(days=days), symbol)
                for width in BucketWidth:
                    quality = QualityQuery(days, symbol, width, (0.5, 1.0), (1.0, 2.0), (1.0, 2.0))
                    series = (await store.quality_rows(quality, now=now, cache=cache)).counts
                    expected_series = await series_from_scratch(
                        clean_db, now - timedelta(days=days), width.value, symbol
                    )
                    assert series == expected_series, (offset, days, symbol, width)


async def test_writers_on_several_connections_use_several_stripes(api: Stub, clean_db: asyncpg.Pool) -> None:
    rng = random.Random(4)
    await write_history(api, rng, 120)

    stripes = await clean_db.fetchval("SELECT count(DISTINCT stripe) FROM decision_stats")
    assert stripes > 1


async def test_rebuilding_the_rollups_gives_what_the_triggers_kept(api: Stub, clean_db: asyncpg.Pool) -> None:
    rng = random.Random(5)
    await record_outcomes(api, rng, await write_history(api, rng, 200))
    rollup = """
        SELECT span, bucket, symbol, sum(total), sum(signals), sum(skips), sum(risk_rejects),
               sum(closed), sum(wins), sum(losses), sum(r_multiple_sum), sum(pnl_sum),
               sum(closed_fingerprint)
        FROM decision_stats GROUP BY span, bucket, symbol HAVING sum(total) > 0
        ORDER BY span, bucket, symbol
    """
    failures = """
        SELECT span, bucket, symbol, gate, sum(failures) FROM decision_gate_failures
        GROUP BY span, bucket, symbol, gate HAVING sum(failures) > 0 ORDER BY span, bucket, symbol, gate
    """
    gate_stats = """
        SELECT span, bucket, symbol, gate, passed, side, bin, alone, sum(n) FROM decision_gate_stats
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    """
    combinations = """
        SELECT span, bucket, symbol, failed, sum(n) FROM decision_gate_combinations
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4
    """
    closes = """
        SELECT span, bucket, symbol, sum(closed), sum(wins), sum(r_multiple_sum) FROM decision_close_stats
        GROUP BY 1, 2, 3 HAVING sum(closed) <> 0 ORDER BY 1, 2, 3
    """
    queries = (rollup, failures, gate_stats, combinations, closes)
    kept = [await clean_db.fetch(q) for q in queries]
    assert all(kept)

    await clean_db.execute("SELECT decision_stats_rebuild()")

    assert [await clean_db.fetch(q) for q in queries] == kept
    assert await clean_db.fetchval("SELECT count(*) FROM decision_stats WHERE stripe <> 0") == 0


async def test_a_gate_named_twice_in_an_old_row_fails_once(api: Stub, clean_db: asyncpg.Pool) -> None:
    # Rows stored before sigma.v1 may repeat a gate name; the breakdown counts decisions.
    await clean_db.execute(
        """
        INSERT INTO decision_logs (symbol, direction, decision_type, trader_count, agreement_pct,
                                   effective_k, gates, reasoning)
        VALUES ('BTC', 'long', 'skip', 3, 0.5, 1.0,
                '[{"name": "freshness", "passed": false}, {"name": "freshness", "passed": false}]',
                'old row')
        """
    )
    answer = await api.GetStats(pb.GetStatsRequest(days=1))

    assert [(g.name, g.count) for g in answer.gate_failures] == [("freshness", 1)]
    await assert_stats_match(api, clean_db)


async def test_the_start_hours_sums_one_read_returns_are_not_changed_by_the_next(
    api: Stub, clean_db: asyncpg.Pool
) -> None:
    # GetSignalQuality awaits more reads after taking these sums; a concurrent call moving the
    # kept sums forward meanwhile must not change them under it.
    rng = random.Random(8)
    await write_history(api, rng, 300)
    db = Database(clean_db)
    store = DecisionStore(db)
    cache = RollupReadCache()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    async with db.connection() as conn:
        first = await store._window_buckets(conn, 7, hour + timedelta(minutes=5), None)
        _, (counts, failures) = await store._count_parts(conn, first, None, cache)
        taken = ({symbol: replace(c) for symbol, c in counts.items()}, Counter(failures))
        later = await store._window_buckets(conn, 7, hour + timedelta(minutes=55), None)
        await store._count_parts(conn, later, None, cache)
    assert (counts, failures) == taken
