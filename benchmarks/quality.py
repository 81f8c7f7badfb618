"""7. Signal-quality analytics (days=7): GetStats, GetSignalQuality and GetGateAnalytics against
the naive SQL that answers the same question from the rows of the window.

The naive queries are what one would write first, and what tests/test_signal_quality.py
checks the RPCs against: window functions over the window's closed signals for
GetStats' closed-signal figures (on top of get_stats.py's naive aggregate), a
generate_series of buckets joined to grouped counts plus width_bucket over the
closed signals for GetSignalQuality, and the window's gates expanded with
jsonb_array_elements for GetGateAnalytics. The goal is an answer in a few
milliseconds (5 ms) warm at 1M decisions; each row also gives the speed-up over its baseline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from benchmarks.context import Context, interleaved, progress, served
from benchmarks.get_stats import NAIVE_SQL as NAIVE_COUNTS_SQL
from benchmarks.report import Goal, Measurement, Row
from benchmarks.stats import ratio, summarize
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

DAYS = 7

NAIVE_CLOSED_SQL = """
WITH c AS (
    SELECT g.grp, id, outcome_closed_at AS closed_at, decided_at, outcome_r_multiple AS r, outcome_pnl AS pnl
    FROM decision_logs, LATERAL (VALUES ('*'), (symbol)) AS g(grp)
    WHERE outcome_pnl IS NOT NULL AND decided_at >= NOW() - make_interval(days => $1::int)
), curve AS (
    SELECT *, sum(r) OVER w AS cum, row_number() OVER w AS n,
           row_number() OVER (PARTITION BY grp, sign(pnl) ORDER BY closed_at, id) AS n_kind
    FROM c WINDOW w AS (PARTITION BY grp ORDER BY closed_at, id)
), peaks AS (
    SELECT *, max(cum) OVER (PARTITION BY grp ORDER BY closed_at, id) AS peak FROM curve
), runs AS (
    SELECT grp, sign(pnl) AS kind, count(*) AS length FROM curve GROUP BY grp, sign(pnl), n - n_kind
)
SELECT grp, avg(r) FILTER (WHERE pnl > 0), avg(r) FILTER (WHERE pnl < 0),
       sum(pnl) FILTER (WHERE pnl > 0) / NULLIF(-sum(pnl) FILTER (WHERE pnl < 0), 0),
       max(GREATEST(peak, 0) - cum), max(r), min(r),
       (SELECT max(length) FROM runs WHERE runs.grp = peaks.grp AND kind = 1),
       (SELECT max(length) FROM runs WHERE runs.grp = peaks.grp AND kind = -1),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY closed_at - decided_at)
FROM peaks GROUP BY grp
"""

NAIVE_QUALITY_SQL = """
WITH w AS (SELECT NOW() - make_interval(days => $1::int) AS start),
b AS (SELECT generate_series(date_trunc('day', start), date_trunc('day', NOW()), '1 day') AS bucket FROM w),
s AS (
    SELECT date_trunc('day', decided_at) AS bucket, count(*) AS signals FROM decision_logs, w
    WHERE decision_type = 'signal' AND decided_at >= w.start GROUP BY 1
), c AS (
    SELECT date_trunc('day', outcome_closed_at) AS bucket, count(*) AS closed,
           count(*) FILTER (WHERE outcome_pnl > 0) AS wins, sum(outcome_r_multiple) AS r
    FROM decision_logs, w WHERE outcome_pnl IS NOT NULL AND outcome_closed_at >= w.start GROUP BY 1
), series AS (
    SELECT b.bucket, signals, closed, wins, r, sum(COALESCE(r, 0)) OVER (ORDER BY b.bucket) AS cumulative
    FROM b LEFT JOIN s USING (bucket) LEFT JOIN c USING (bucket)
), closed_signals AS (
    SELECT agreement_pct::float8 AS agreement, effective_k::float8 AS effective_k,
           trader_count::float8 AS traders, outcome_pnl, outcome_r_multiple
    FROM decision_logs, w WHERE outcome_pnl IS NOT NULL AND decided_at >= w.start
), strength AS (
    SELECT 'agreement' AS measure,
           width_bucket(agreement, '{0.5,0.6,0.7,0.8,0.9,1}'::float8[]) AS bucket, count(*) AS closed,
           count(*) FILTER (WHERE outcome_pnl > 0) AS wins, avg(outcome_r_multiple) AS avg_r
    FROM closed_signals GROUP BY 2
    UNION ALL
    SELECT 'effective_k', width_bucket(effective_k, '{1,2,3,4,6,10}'::float8[]), count(*),
           count(*) FILTER (WHERE outcome_pnl > 0), avg(outcome_r_multiple)
    FROM closed_signals GROUP BY 2
    UNION ALL
    SELECT 'traders', width_bucket(traders, '{1,3,5,10,20,50}'::float8[]), count(*),
           count(*) FILTER (WHERE outcome_pnl > 0), avg(outcome_r_multiple)
    FROM closed_signals GROUP BY 2
)
SELECT (SELECT jsonb_agg(series ORDER BY bucket) FROM series), (SELECT jsonb_agg(strength) FROM strength)
"""

NAIVE_GATES_SQL = """
WITH g AS (
    SELECT d.id, d.decision_type, e->>'name' AS name, (e->>'passed')::boolean AS passed,
           (e->>'value')::float8 AS value, (e->>'threshold')::float8 AS threshold
    FROM decision_logs AS d, jsonb_array_elements(d.gates) AS e
    WHERE d.decided_at >= NOW() - make_interval(days => $1::int)
), per_decision AS (
    SELECT id, decision_type, count(*) FILTER (WHERE NOT passed) AS failures,
           array_agg(name ORDER BY name) FILTER (WHERE NOT passed) AS failed
    FROM g GROUP BY id, decision_type
), gates AS (
    SELECT name, count(*) AS evaluated, count(*) FILTER (WHERE NOT passed) AS failed,
           count(*) FILTER (WHERE NOT passed AND failures = 1) AS alone
    FROM g JOIN per_decision USING (id) GROUP BY name
), sides AS (
    SELECT name, passed, sign(value - threshold) AS side,
           width_bucket(abs(value - threshold) / COALESCE(NULLIF(abs(threshold), 0), 1),
                        '{0,0.01,0.02,0.05,0.1,0.2,0.5,1}'::float8[]) AS bin, count(*) AS n
    FROM g WHERE value IS NOT NULL AND threshold IS NOT NULL GROUP BY 1, 2, 3, 4
), combinations AS (
    SELECT failed, count(*) AS n FROM per_decision WHERE decision_type = 'skip' AND failures > 0
    GROUP BY failed ORDER BY n DESC LIMIT 10
)
SELECT (SELECT jsonb_agg(gates) FROM gates), (SELECT jsonb_agg(sides) FROM sides),
       (SELECT jsonb_agg(combinations) FROM combinations)
"""


async def run(ctx: Context) -> Measurement:
    m = Measurement("quality", "Signal-quality analytics vs the naive SQL")
    repeat = ctx.sizes.stats_repeat
    progress("signal-quality analytics, warm")
    async with served(ctx.url) as s:
        conn = await asyncpg.connect(ctx.url)
        try:

            async def naive_stats() -> None:
                await conn.fetchrow(NAIVE_COUNTS_SQL, DAYS)
                await conn.fetch(NAIVE_CLOSED_SQL, DAYS)

            cases: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]] = [
                ("GetStats", lambda: s.stub.GetStats(pb.GetStatsRequest(days=DAYS)), naive_stats),
                (
                    "GetSignalQuality",
                    lambda: s.stub.GetSignalQuality(pb.GetSignalQualityRequest(days=DAYS)),
                    lambda: conn.fetchrow(NAIVE_QUALITY_SQL, DAYS),
                ),
                (
                    "GetGateAnalytics",
                    lambda: s.stub.GetGateAnalytics(pb.GetGateAnalyticsRequest(days=DAYS)),
                    lambda: conn.fetchrow(NAIVE_GATES_SQL, DAYS),
                ),
            ]
            stats = await s.stub.GetStats(pb.GetStatsRequest(days=DAYS))
            for name, rpc_call, naive_call in cases:
                timed = await interleaved({"rpc": rpc_call, "naive": naive_call}, repeat, warmup=2)
                rpc, base = summarize(timed["rpc"]), summarize(timed["naive"])
                m.rows.append(
                    Row(
                        f"{name} days={DAYS} p50 warm vs naive SQL",
                        rpc.p50,
                        "ms",
                        baseline=base.p50,
                        ratio=ratio(base.p50, rpc.p50),
                        ratio_label="speed-up",
                        goal=Goal("figure", "<=", 5, "ms"),
                    )
                )
                m.details[f"{name}_rpc_ms"] = rpc.as_dict()
                m.details[f"{name}_naive_ms"] = base.as_dict()
        finally:
            await conn.close()
    m.details["window_decisions"] = stats.totals.total_decisions
    m.details["window_closed_signals"] = stats.totals.closed_count
    m.notes.append(
        f"window: {stats.totals.total_decisions:,} decisions, {stats.totals.closed_count:,} closed signals"
    )
    return m
