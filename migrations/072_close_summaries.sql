-- GetStats' drawdown, streaks, best/worst, sums and median read from one
-- summary per close day or hour instead of every closed signal of the window.
--
-- Those figures follow the closed signals in close-time order, so a window's
-- series is the concatenation of its close days' and hours' series, and each
-- can be summarised once (peak, trough, drawdown, first/last runs, longest
-- runs, sums, sorted holding times) and the summaries combined in order (the
-- service's `ClosedStretch.then`). A summary is a cache, not a rollup: the
-- service computes it from the rows (sigma_grpc.storage.decisions,
-- refresh_close_summaries) and stores it with the fingerprint of the rows it
-- read. A reader uses it only while that fingerprint equals the bucket's
-- closed_fingerprint below, which the triggers keep exact in every
-- transaction; otherwise it reads the rows. So a summary can be stale,
-- missing or written by two refreshers at once and an answer is never wrong.

-- decision_close_stats (migration 069) with the sum of its closed signals'
-- decision_closed_hash (migration 071), like decision_stats' closed_fingerprint.
ALTER TABLE decision_close_stats ADD COLUMN closed_fingerprint NUMERIC NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION decision_close_upserts(source TEXT, stripe SMALLINT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[
        format($upsert$
            INSERT INTO decision_close_stats AS s (
                span, bucket, symbol, stripe, closed, wins, r_multiple_sum, closed_fingerprint
            )
            SELECT spans.span, decision_stats_bucket(d.outcome_closed_at, spans.span), d.symbol, %1$s,
                   sum(d.sign), COALESCE(sum(d.sign) FILTER (WHERE d.outcome_pnl > 0), 0),
                   sum(d.sign * d.outcome_r_multiple),
                   sum(d.sign * decision_closed_hash(
                       d.id, d.symbol, d.decision_type, d.decided_at, d.outcome_closed_at, d.outcome_pnl,
                       d.outcome_r_multiple, d.agreement_pct, d.effective_k, d.trader_count))
            FROM (%2$s) AS d, (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span)
            WHERE d.decision_type = 'signal' AND d.outcome_pnl IS NOT NULL
            GROUP BY 1, 2, 3
            ORDER BY 1, 2, 3
            ON CONFLICT (span, bucket, symbol, stripe) DO UPDATE SET
                closed = s.closed + EXCLUDED.closed,
                wins = s.wins + EXCLUDED.wins,
                r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum,
                closed_fingerprint = s.closed_fingerprint + EXCLUDED.closed_fingerprint
        $upsert$, stripe, source)
    ]
$$;

CREATE OR REPLACE FUNCTION decision_close_stats_compact(before TIMESTAMPTZ) RETURNS void LANGUAGE sql AS $$
    WITH picked AS (
        SELECT span, bucket, symbol, stripe FROM decision_close_stats
        WHERE stripe <> 0 AND bucket + make_interval(hours => span) <= before
        ORDER BY span, bucket, symbol, stripe
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM decision_close_stats AS s USING picked AS p
        WHERE (s.span, s.bucket, s.symbol, s.stripe) = (p.span, p.bucket, p.symbol, p.stripe)
        RETURNING s.*
    )
    INSERT INTO decision_close_stats AS s (
        span, bucket, symbol, stripe, closed, wins, r_multiple_sum, closed_fingerprint
    )
    SELECT span, bucket, symbol, 0, sum(closed), sum(wins), sum(r_multiple_sum), sum(closed_fingerprint)
    FROM moved
    GROUP BY span, bucket, symbol
    ORDER BY span, bucket, symbol
    ON CONFLICT (span, bucket, symbol, stripe) DO UPDATE SET
        closed = s.closed + EXCLUDED.closed,
        wins = s.wins + EXCLUDED.wins,
        r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum,
        closed_fingerprint = s.closed_fingerprint + EXCLUDED.closed_fingerprint;
$$;

-- The rollup again with the new column (decision_stats_rebuild of migration 069
-- calls decision_close_upserts, so later rebuilds keep it too).
DO $$
DECLARE
    upsert TEXT;
BEGIN
    LOCK TABLE decision_logs IN SHARE ROW EXCLUSIVE MODE;
    LOCK TABLE decision_close_stats IN EXCLUSIVE MODE;
    DELETE FROM decision_close_stats;
    FOREACH upsert IN ARRAY decision_close_upserts('SELECT 1 AS sign, * FROM decision_logs', 0::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
END
$$;

-- One row per UTC hour (span 1) or day (span 24) of outcome_closed_at and
-- symbol ('' for all symbols together): the summary of its closed signals in
-- close-time order (ties by id). R in ten-thousandths (as the service counts it).
CREATE TABLE decision_close_summaries (
    span SMALLINT NOT NULL CHECK (span IN (1, 24)),
    bucket TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    -- The bucket's closed_fingerprint (summed over its stripes) when the summary was computed.
    fingerprint NUMERIC NOT NULL,
    -- The earliest decision time of the bucket's closed signals: a window starting later
    -- leaves some of them out, and reads the rows instead.
    earliest_decided_at TIMESTAMPTZ NOT NULL,
    closed INT NOT NULL,
    wins INT NOT NULL,
    losses INT NOT NULL,
    r_units BIGINT NOT NULL,       -- the sum of R
    peak BIGINT NOT NULL,          -- the highest running total, the start (0) included
    trough BIGINT NOT NULL,        -- the lowest running total, the start (0) included
    drawdown BIGINT NOT NULL,      -- the largest fall of the running total from its peak so far
    best BIGINT NOT NULL,
    worst BIGINT NOT NULL,
    first_kind SMALLINT NOT NULL,  -- the sign of the first P&L, and how many in a row share it
    first_run INT NOT NULL,
    last_kind SMALLINT NOT NULL,   -- the same for the last
    last_run INT NOT NULL,
    longest_win_run INT NOT NULL,
    longest_loss_run INT NOT NULL,
    win_r_sum NUMERIC NOT NULL,
    loss_r_sum NUMERIC NOT NULL,
    gross_win NUMERIC NOT NULL,
    gross_loss NUMERIC NOT NULL,
    -- Holding times (outcome_closed_at - decided_at) in microseconds, ascending.
    holds_us BIGINT[] NOT NULL,
    PRIMARY KEY (span, bucket, symbol)
);
