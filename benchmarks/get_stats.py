"""4. GetStats(days=7) against the naive single SQL aggregate over the same window.

The naive aggregate is what anyone would write first: one query, the window's
rows grouped by symbol for the counts, and the same rows' gates expanded with
jsonb_array_elements for the failure breakdown. GetStats answers the same
question (totals, by_symbol, gate_failures); the goal is a 20x speed-up.

Warm: both timed in turns, after a few calls of each.

After a restart: the server is stopped, its pool closed, a new pool and server
started and the first GetStats call timed (new channel, connected before the
clock starts: the handshake is not the service's). The naive aggregate's
counterpart is its first run on a new connection (no plan or catalog caches).
PostgreSQL itself keeps running, so its shared buffers and the OS page cache
stay warm: this is a restarted service, not a cold machine, and the report says so.
"""

from __future__ import annotations

import json
import statistics

import asyncpg

from benchmarks.context import Context, interleaved, progress, served, time_ms
from benchmarks.report import Goal, Measurement, Row
from benchmarks.stats import ratio, summarize
from sigma_grpc.gen.sigma.v1 import decision_service_pb2 as pb

DAYS = 7

NAIVE_SQL = """
WITH w AS (
    SELECT symbol, decision_type, outcome_pnl, outcome_r_multiple, gates
    FROM decision_logs
    WHERE decided_at >= NOW() - make_interval(days => $1::int)
), by_symbol AS (
    SELECT symbol,
           count(*) AS total,
           count(*) FILTER (WHERE decision_type = 'signal') AS signals,
           count(*) FILTER (WHERE decision_type = 'skip') AS skips,
           count(*) FILTER (WHERE decision_type = 'risk_reject') AS risk_rejects,
           count(*) FILTER (WHERE outcome_pnl IS NOT NULL) AS closed,
           count(*) FILTER (WHERE outcome_pnl > 0) AS wins,
           count(*) FILTER (WHERE outcome_pnl < 0) AS losses,
           COALESCE(sum(outcome_r_multiple), 0) AS r_multiple_sum,
           COALESCE(sum(outcome_pnl), 0) AS pnl_sum
    FROM w
    GROUP BY symbol
), gate_failures AS (
    SELECT gate->>'name' AS name, count(*) AS failures
    FROM w, jsonb_array_elements(w.gates) AS gate
    WHERE (gate->>'passed')::boolean IS FALSE
    GROUP BY 1
)
SELECT (SELECT jsonb_agg(b ORDER BY b.symbol) FROM by_symbol AS b) AS by_symbol,
       (SELECT jsonb_agg(g ORDER BY g.failures DESC) FROM gate_failures AS g) AS gate_failures
"""


async def _first_call_after_restart(url: str, request: pb.GetStatsRequest) -> float:
    async with served(url) as s:
        return await time_ms(lambda: s.stub.GetStats(request))


async def _naive_on_new_connection(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        return await time_ms(lambda: conn.fetchrow(NAIVE_SQL, DAYS))
    finally:
        await conn.close()


def _compare(m: Measurement, answer: pb.GetStatsResponse, naive: asyncpg.Record) -> None:
    """Note when GetStats and the naive aggregate disagree on the window's size (a wrong rollup would
    make any speed-up meaningless). A row or two may cross the window's edge between the two."""
    naive_total = sum(int(b["total"]) for b in json.loads(naive["by_symbol"] or "[]"))
    served_total = answer.totals.total_decisions
    m.details["window_rows_naive"] = naive_total
    if abs(naive_total - served_total) > max(5, served_total // 1000):
        m.notes.append(
            f"WARNING: GetStats counts {served_total:,} decisions in the window, "
            f"the naive aggregate {naive_total:,}"
        )


async def run(ctx: Context) -> Measurement:
    m = Measurement("stats", "GetStats vs the naive aggregate")
    sizes = ctx.sizes
    request = pb.GetStatsRequest(days=DAYS)
    progress("GetStats, warm")
    async with served(ctx.url) as s:
        answer = await s.stub.GetStats(request)
        if ctx.sizes.rows and (not answer.by_symbol or not answer.gate_failures):
            raise RuntimeError("GetStats answered without by_symbol or gate_failures: nothing was measured")
        naive_conn = await asyncpg.connect(ctx.url)
        try:
            naive = await naive_conn.fetchrow(NAIVE_SQL, DAYS)
            assert naive is not None
            _compare(m, answer, naive)
            warm = await interleaved(
                {
                    "rpc": lambda: s.stub.GetStats(request),
                    "naive": lambda: naive_conn.fetchrow(NAIVE_SQL, DAYS),
                },
                sizes.stats_repeat,
                warmup=2,
            )
        finally:
            await naive_conn.close()

    progress(f"GetStats, first call after a restart (x{sizes.restarts})")
    cold_rpc, cold_naive = [], []
    for _ in range(sizes.restarts):
        cold_rpc.append(await _first_call_after_restart(ctx.url, request))
        cold_naive.append(await _naive_on_new_connection(ctx.url))

    rpc, base = summarize(warm["rpc"]), summarize(warm["naive"])
    first, first_naive = statistics.median(cold_rpc), statistics.median(cold_naive)
    m.rows += [
        Row(
            f"GetStats days={DAYS} p50 warm vs naive aggregate",
            rpc.p50,
            "ms",
            baseline=base.p50,
            ratio=ratio(base.p50, rpc.p50),
            ratio_label="speed-up",
            goal=Goal("ratio", ">=", 20),
        ),
        Row(
            "GetStats first call after a restart vs naive on a new connection",
            first,
            "ms",
            baseline=first_naive,
            ratio=ratio(first_naive, first),
            ratio_label="speed-up",
            goal=Goal("ratio", ">=", 20),
        ),
    ]
    m.details = {
        "days": DAYS,
        "window_rows": answer.totals.total_decisions,
        "symbols": len(answer.by_symbol),
        "gates_failing": len(answer.gate_failures),
        "rpc_warm_ms": rpc.as_dict(),
        "naive_warm_ms": base.as_dict(),
        "rpc_after_restart_ms": cold_rpc,
        "naive_new_connection_ms": cold_naive,
    }
    m.notes += [
        f"window: {answer.totals.total_decisions:,} decisions, {len(answer.by_symbol)} symbols, "
        f"{len(answer.gate_failures)} failing gates; "
        f"p99 warm GetStats {rpc.p99:.2f} ms, naive {base.p99:.2f} ms",
        "'after a restart' is a new server, pool and connection; PostgreSQL keeps running, so its shared "
        "buffers and the OS page cache stay warm: not a cold cache",
    ]
    return m
