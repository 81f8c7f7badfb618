"""A realistic decision history, fast: INSERT … SELECT over generate_series, inside PostgreSQL.

What it looks like (deterministic: `setseed` fixes PostgreSQL's random()):
- `rows` decisions evenly spread over the 30 days before now (newest first is
  row 1), each logged 20-520 ms after it was decided, with a request id and its
  hash as the service stores them;
- symbols weighted unevenly (BTC 30 %, ETH 22 %, SOL 15 %, HYPE 10 %, kPEPE 8 %,
  DOGE 6 %, AVAX 4 %, WIF 3 %, ARB 2 %);
- ~70 % skips, ~10 % risk rejects, ~20 % signals, under the type rules of
  migration 062: a skip has at least one failed gate (supermajority fails most,
  then effective_k, ev_gate, freshness, price_band), signals and risk rejects
  pass all five gates with at least 3 traders, a risk reject fails max_exposure
  and/or daily_loss, a signal passes both;
- outcomes on ~90 % of the signals older than 4 hours, closed 0.5-9 h after the
  decision (never before it, never after now): ~45 % wins, ~52 % losses, the
  rest breakeven.

How it is fast: 20,000 distinct contents are built once and each row picks one;
the table's indexes are dropped and rebuilt after the load (see _drop_indexes);
two connections insert halves at once; and the seeding sessions switch the
table's triggers off (`session_replication_role = replica`, superusers only):
the rows satisfy the type rules by construction, and the statistics rollup
that triggers would maintain row by row is rebuilt in one pass afterwards
(decision_stats_rebuild(), when the migrations define it). Then VACUUM (ANALYZE):
the measurements see settled pages and fresh statistics, and autovacuum has
no reason to wake up in the middle of them. Last, the close summaries a running
service keeps (migration 072) are computed once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sigma_grpc.storage.decisions import DecisionStore
from sigma_grpc.storage.pool import Database, create_pool

# Spread over this many days before now.
DAYS = 30
# Signals older than this may have an outcome; younger ones are still open.
OPEN_HOURS = 4

# Distinct decision contents (symbol, type, gates, checks, reasoning...) built first: building the
# JSONB and the text costs ~50 µs a row, 50 s for a million. Rows then pick one each at random, and
# get their own time, request id and outcome; 20,000 contents keep every mix and size realistic.
CONTENTS = 20_000
# Rows per INSERT statement, and how many connections insert at once (from this many rows on).
CHUNK = 100_000
PARALLEL = 2
PARALLEL_FROM = 50_000

_CONTENT_SQL = """
CREATE TEMP TABLE seed_content AS
WITH r AS (
    -- Volatile random() in a subquery's select list is evaluated once per row (never inlined).
    SELECT n,
           random() AS r_symbol, random() AS r_type, random() AS r_dir, random() AS r_traders,
           random() AS g1, random() AS g2, random() AS g3, random() AS g4, random() AS g5,
           random() AS v1, random() AS v2, random() AS v3, random() AS v4, random() AS v5,
           random() AS k1, random() AS k2, random() AS r_conf, random() AS r_ev, random() AS r_price
    FROM generate_series(0, $1::int - 1) AS n
), t AS (
    SELECT r.*,
           CASE WHEN r_symbol < 0.30 THEN 'BTC' WHEN r_symbol < 0.52 THEN 'ETH'
                WHEN r_symbol < 0.67 THEN 'SOL' WHEN r_symbol < 0.77 THEN 'HYPE'
                WHEN r_symbol < 0.85 THEN 'kPEPE' WHEN r_symbol < 0.91 THEN 'DOGE'
                WHEN r_symbol < 0.95 THEN 'AVAX' WHEN r_symbol < 0.98 THEN 'WIF' ELSE 'ARB' END AS symbol,
           CASE WHEN r_type < 0.70 THEN 'skip' WHEN r_type < 0.80 THEN 'risk_reject' ELSE 'signal' END AS kind
    FROM r
), f AS (
    SELECT t.*,
           -- Each gate fails on its own with its own frequency; a skip with none failed fails supermajority.
           kind = 'skip' AND g2 < 0.30 AS f_effk,
           kind = 'skip' AND g3 < 0.12 AS f_fresh,
           kind = 'skip' AND g4 < 0.07 AS f_band,
           kind = 'skip' AND g5 < 0.22 AS f_ev,
           kind = 'risk_reject' AND k1 < 0.65 AS f_exposure,
           CASE symbol WHEN 'BTC' THEN 97123.5 WHEN 'ETH' THEN 3412.25 WHEN 'SOL' THEN 187.42
                WHEN 'HYPE' THEN 24.61 WHEN 'kPEPE' THEN 0.01834 WHEN 'DOGE' THEN 0.3841
                WHEN 'AVAX' THEN 38.27 WHEN 'WIF' THEN 2.143 ELSE 0.8124 END AS base_price
    FROM t
), g AS (
    SELECT f.*,
           kind = 'skip' AND (g1 < 0.45 OR NOT (f_effk OR f_fresh OR f_band OR f_ev)) AS f_super,
           -- A risk reject fails at least one check.
           kind = 'risk_reject' AND (k2 < 0.35 OR NOT f_exposure) AS f_daily
    FROM f
), v AS (
    SELECT g.*,
           round((CASE WHEN f_super THEN 0.45 + v1 * 0.24 ELSE 0.70 + v1 * 0.28 END)::numeric, 4)
               AS agreement,
           round((CASE WHEN f_effk THEN 0.8 + v2 * 1.19 ELSE 2.0 + v2 * 5 END)::numeric, 3) AS eff_k,
           round((CASE WHEN f_fresh THEN 61 + v3 * 200 ELSE 2 + v3 * 57 END)::numeric, 1) AS freshness,
           round((CASE WHEN f_band THEN 1.01 + v4 * 1.5 ELSE v4 * 0.99 END)::numeric, 3) AS band,
           round((CASE WHEN f_ev THEN -0.3 + v5 * 0.49 ELSE 0.2 + v5 * 1.3 END)::numeric, 3) AS ev,
           CASE WHEN kind = 'skip' THEN (r_traders * 12)::int ELSE 3 + (r_traders * 10)::int END AS traders
    FROM g
)
SELECT
    n,
    symbol,
    CASE WHEN kind = 'skip' AND r_dir < 0.25 THEN 'none' WHEN r_dir < 0.6 THEN 'long' ELSE 'short' END
        AS direction,
    kind,
    traders,
    agreement,
    eff_k,
    round((0.5 + r_conf * 0.45)::numeric, 4) AS avg_confidence,
    round((-0.5 + r_ev * 2)::numeric, 4) AS ev_estimate,
    round(base_price * (0.95 + r_price * 0.1)::numeric, 8) AS price,
    jsonb_build_array(
        jsonb_build_object('name', 'supermajority', 'passed', NOT f_super, 'value', agreement,
                           'threshold', 0.7),
        jsonb_build_object('name', 'effective_k', 'passed', NOT f_effk, 'value', eff_k, 'threshold', 2.0),
        jsonb_build_object('name', 'freshness', 'passed', NOT f_fresh, 'value', freshness, 'threshold', 60),
        jsonb_build_object('name', 'price_band', 'passed', NOT f_band, 'value', band, 'threshold', 1.0),
        jsonb_build_object('name', 'ev_gate', 'passed', NOT f_ev, 'value', ev, 'threshold', 0.2)
    ) AS gates,
    CASE WHEN kind = 'skip' THEN '[]'::jsonb ELSE jsonb_build_array(
        jsonb_build_object('name', 'max_exposure', 'passed', NOT f_exposure, 'limit', 0.1,
            'value', round((CASE WHEN f_exposure THEN 0.101 + k1 * 0.1 ELSE k1 * 0.09 END)::numeric, 3)),
        jsonb_build_object('name', 'daily_loss', 'passed', NOT f_daily, 'limit', 0.03,
            'value', round((CASE WHEN f_daily THEN 0.031 + k2 * 0.02 ELSE k2 * 0.029 END)::numeric, 3))
    ) END AS risk_checks,
    CASE kind
        WHEN 'signal' THEN format(
            '%s traders agree. %s%% agreement with effK=%s. All gates passed; risk checks within limits.',
            traders, round(agreement * 100), round(eff_k, 1))
        WHEN 'risk_reject' THEN format(
            'Consensus held: %s traders, %s%% agreement with effK=%s. Rejected by risk checks: %s.',
            traders, round(agreement * 100), round(eff_k, 1),
            concat_ws(', ', CASE WHEN f_exposure THEN 'max_exposure' END,
                      CASE WHEN f_daily THEN 'daily_loss' END))
        ELSE format(
            'Skipped: %s traders detected but gates failed. %s.', traders,
            concat_ws('; ',
                CASE WHEN f_super THEN format('only %s%% agreement (need 70%%)', round(agreement * 100)) END,
                CASE WHEN f_effk THEN format('effK=%s too low (need 2.0)', round(eff_k, 1)) END,
                CASE WHEN f_fresh THEN format('signal is %ss old (max 60s)', round(freshness)) END,
                CASE WHEN f_band THEN format('price moved %sR from entry (max 1.0R)', band) END,
                CASE WHEN f_ev THEN format('EV %sR below 0.2R', ev) END))
    END AS reasoning
FROM v
"""

_ROWS_SQL = f"""
WITH r AS (
    SELECT i,
           $2::timestamptz - make_interval(secs => (i - random()) * $3::float8) AS decided_at,
           floor(random() * $4::int)::int AS pick,
           random() AS r_lag, random() AS o_closed, random() AS o_win, random() AS o_r, random() AS o_risk,
           random() AS o_time
    FROM generate_series($5::int, $1::int) AS i
), o AS (
    SELECT r.*, c.*,
           c.kind = 'signal' AND decided_at < $2::timestamptz - make_interval(hours => {OPEN_HOURS})
               AND o_closed < 0.9 AS closed,
           CASE WHEN o_win < 0.45 THEN 0.1 + o_r * 2.9 WHEN o_win < 0.97 THEN -(0.05 + o_r) ELSE 0 END
               AS r_multiple,
           format('hl-decide-%s', i) AS request_id
    FROM r JOIN seed_content AS c ON c.n = r.pick
)
INSERT INTO decision_logs (
    created_at, decided_at, request_id, request_hash, symbol, direction, decision_type, trader_count,
    agreement_pct, effective_k, avg_confidence, ev_estimate, price_at_decision, gates, risk_checks,
    reasoning, outcome_pnl, outcome_r_multiple, outcome_closed_at
)
SELECT
    decided_at + make_interval(secs => 0.02 + r_lag * 0.5), decided_at, request_id,
    sha256(convert_to(request_id, 'UTF8')), symbol, direction, kind, traders, agreement, eff_k,
    avg_confidence, ev_estimate, price, gates, risk_checks, reasoning,
    CASE WHEN closed THEN round((r_multiple * (20 + o_risk * 180))::numeric, 8) END,
    CASE WHEN closed THEN round(r_multiple::numeric, 4) END,
    -- Closed 0.5-9 h after the decision, never after now (and so never before the decision).
    CASE WHEN closed
        THEN LEAST(decided_at + make_interval(secs => 1800 + o_time * 30600), $2::timestamptz) END
FROM o
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _drop_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop decision_logs' indexes (and the constraints and foreign keys that need them); the
    statements that put them back, in order.

    A million rows inserted into nine indexes take ~60 µs each (each index a random insert),
    against ~10 µs into the bare heap and a sorted build of each index afterwards. The
    definitions come from the catalog, so indexes later migrations add are rebuilt too.
    Built in one sorted pass, the indexes are denser than ones grown row by row (the random
    UUID primary key most): reads may be a little faster than on a table a year old.
    """
    table = "'decision_logs'::regclass"
    foreign = await conn.fetch(
        f"SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
        f"FROM pg_constraint WHERE confrelid = {table} AND contype = 'f'"
    )
    constraints = await conn.fetch(
        f"SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        f"WHERE conrelid = {table} AND contype IN ('p', 'u', 'x') ORDER BY contype"  # the primary key first
    )
    indexes = await conn.fetch(
        f"SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index "
        f"WHERE indrelid = {table} AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)"
    )
    for fk in foreign:
        await conn.execute(f"ALTER TABLE {fk['tbl']} DROP CONSTRAINT {_quote(fk['conname'])}")
    for c in constraints:
        await conn.execute(f"ALTER TABLE decision_logs DROP CONSTRAINT {_quote(c['conname'])}")
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    return [
        *(f"ALTER TABLE decision_logs ADD CONSTRAINT {_quote(c['conname'])} {c['def']}" for c in constraints),
        *(index["def"] for index in indexes),
        *(f"ALTER TABLE {fk['tbl']} ADD CONSTRAINT {_quote(fk['conname'])} {fk['def']}" for fk in foreign),
    ]


@dataclass(frozen=True, slots=True)
class Seeded:
    rows: int
    insert_s: float
    index_s: float
    rebuild_s: float | None
    vacuum_s: float
    summaries_s: float  # computing the close summaries (migration 072)
    triggers_off: bool
    notes: tuple[str, ...]


async def _insert_part(url: str, first: int, last: int, *, now: datetime, step_s: float, part: int) -> bool:
    """Rows `first`..`last` on a connection of their own; whether the triggers were off."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        triggers_off = await _triggers_off(conn)
        # Deterministic, and a different sequence for each part.
        await conn.execute("SELECT setseed($1::float8)", 0.42 + part / 100)
        contents = min(CONTENTS, last - first + 1)
        await conn.execute(_CONTENT_SQL, contents)
        # Chunks: with the triggers on, a statement trigger sees its whole statement's rows at once.
        for low in range(first, last + 1, CHUNK):
            await conn.execute(_ROWS_SQL, min(low + CHUNK - 1, last), now, step_s, contents, low)
    finally:
        await conn.close()
    return triggers_off


async def _triggers_off(conn: asyncpg.Connection) -> bool:
    """Switch this session's triggers off (superusers only); whether that worked."""
    try:
        await conn.execute("SET session_replication_role = replica")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def seed(url: str, rows: int) -> Seeded:
    """Fill decision_logs with `rows` decisions ending now; rebuild the stats rollup if there is one.

    Not atomic: the indexes are dropped and the rows inserted over several connections
    (two cores insert twice as fast as one) and committed as they go. The database is
    this run's own, and a failure ends the run, which removes it.
    """
    notes: list[str] = []
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        start = time.perf_counter()
        rebuild = await _drop_indexes(conn)
        parts = PARALLEL if rows >= PARALLEL_FROM else 1
        bounds = [(1 + rows * k // parts, rows * (k + 1) // parts) for k in range(parts)]
        step_s = DAYS * 86400 / max(rows, 1)
        off = await asyncio.gather(
            *(
                _insert_part(url, lo, hi, now=now, step_s=step_s, part=k)
                for k, (lo, hi) in enumerate(bounds)
                if lo <= hi
            )
        )
        triggers_off = all(off)
        insert_s = time.perf_counter() - start
        start = time.perf_counter()
        async with conn.transaction():
            for statement in rebuild:
                await conn.execute(statement)
        index_s = time.perf_counter() - start

        rebuild_s = None
        if not triggers_off:
            notes.append(
                "seeded with the table's triggers on (session_replication_role needs a superuser): "
                "slower, same rows, and the triggers kept any rollup up to date"
            )
        elif await conn.fetchval("SELECT to_regprocedure('decision_stats_rebuild()') IS NOT NULL"):
            # The triggers that maintain the statistics rollup did not run for the seeded rows.
            start = time.perf_counter()
            await conn.execute("SELECT decision_stats_rebuild()")
            rebuild_s = time.perf_counter() - start
        else:
            notes.append("no decision_stats_rebuild() in the migrations: no rollup to rebuild")

        start = time.perf_counter()
        # VACUUM as well as ANALYZE: sets hint bits and the visibility map now rather than during
        # the first measurements, and leaves autovacuum nothing to do in the middle of them.
        await conn.execute("VACUUM (ANALYZE) decision_logs")
        vacuum_s = time.perf_counter() - start
    finally:
        await conn.close()
    # A running service keeps its close summaries (migration 072) fresh; the seeded history gets them
    # now, not from the first measured server's background refresh, which would run during it.
    start = time.perf_counter()
    pool = await create_pool(url)
    try:
        await DecisionStore(Database(pool)).refresh_close_summaries()
    finally:
        await pool.close()
    summaries_s = time.perf_counter() - start
    return Seeded(rows, insert_s, index_s, rebuild_s, vacuum_s, summaries_s, triggers_off, tuple(notes))
