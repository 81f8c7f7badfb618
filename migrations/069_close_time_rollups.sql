-- GetSignalQuality's time series counts closed signals in the bucket of their
-- close (outcome_closed_at), not of their decision: decision_close_stats keeps
-- those counts per UTC hour (span 1) and day (span 24) of outcome_closed_at and
-- per symbol, the way migration 065 keeps GetStats' rollups (statement triggers
-- in the writing transaction, stripes, compaction, rebuild). A closed signal
-- enters when its outcome is recorded (an update) and leaves if deleted.

CREATE TABLE decision_close_stats (
    span SMALLINT NOT NULL CHECK (span IN (1, 24)),
    bucket TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    stripe SMALLINT NOT NULL,
    closed BIGINT NOT NULL,
    wins BIGINT NOT NULL,
    r_multiple_sum NUMERIC NOT NULL,
    PRIMARY KEY (span, bucket, symbol, stripe)
);

-- The upsert that applies `source` (decision_logs rows preceded by `sign`), as
-- SQL text, in key order: see decision_stats_upserts.
CREATE FUNCTION decision_close_upserts(source TEXT, stripe SMALLINT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[
        format($upsert$
            INSERT INTO decision_close_stats AS s (span, bucket, symbol, stripe, closed, wins, r_multiple_sum)
            SELECT spans.span, decision_stats_bucket(d.outcome_closed_at, spans.span), d.symbol, %1$s,
                   sum(d.sign), COALESCE(sum(d.sign) FILTER (WHERE d.outcome_pnl > 0), 0),
                   sum(d.sign * d.outcome_r_multiple)
            FROM (%2$s) AS d, (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span)
            WHERE d.decision_type = 'signal' AND d.outcome_pnl IS NOT NULL
            GROUP BY 1, 2, 3
            HAVING sum(d.sign) <> 0 OR sum(d.sign * d.outcome_r_multiple) <> 0
                   OR sum(d.sign) FILTER (WHERE d.outcome_pnl > 0) <> 0
            ORDER BY 1, 2, 3
            ON CONFLICT (span, bucket, symbol, stripe) DO UPDATE SET
                closed = s.closed + EXCLUDED.closed,
                wins = s.wins + EXCLUDED.wins,
                r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum
        $upsert$, stripe, source)
    ]
$$;

CREATE FUNCTION decision_close_stats_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    source TEXT := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows'
    END;
    upsert TEXT;
BEGIN
    FOREACH upsert IN ARRAY decision_close_upserts(source, (pg_backend_pid() % 8)::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER decision_close_stats_insert AFTER INSERT ON decision_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_close_stats_track();
CREATE TRIGGER decision_close_stats_update AFTER UPDATE ON decision_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_close_stats_track();
CREATE TRIGGER decision_close_stats_delete AFTER DELETE ON decision_logs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_close_stats_track();

CREATE FUNCTION decision_close_stats_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE decision_close_stats;
    RETURN NULL;
END
$$;
CREATE TRIGGER decision_close_stats_truncate AFTER TRUNCATE ON decision_logs
    FOR EACH STATEMENT EXECUTE FUNCTION decision_close_stats_clear();

-- Fold the stripes of buckets that ended before `before` into stripe 0, never
-- waiting for a writer: see decision_stats_compact.
CREATE FUNCTION decision_close_stats_compact(before TIMESTAMPTZ) RETURNS void LANGUAGE sql AS $$
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
    INSERT INTO decision_close_stats AS s (span, bucket, symbol, stripe, closed, wins, r_multiple_sum)
    SELECT span, bucket, symbol, 0, sum(closed), sum(wins), sum(r_multiple_sum) FROM moved
    GROUP BY span, bucket, symbol
    ORDER BY span, bucket, symbol
    ON CONFLICT (span, bucket, symbol, stripe) DO UPDATE SET
        closed = s.closed + EXCLUDED.closed,
        wins = s.wins + EXCLUDED.wins,
        r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum;
$$;

-- decision_stats_rebuild (migration 068's), rebuilding this rollup too.
CREATE OR REPLACE FUNCTION decision_stats_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    upsert TEXT;
    everything CONSTANT TEXT := 'SELECT 1 AS sign, * FROM decision_logs';
BEGIN
    LOCK TABLE decision_logs IN SHARE ROW EXCLUSIVE MODE;
    LOCK TABLE decision_stats, decision_gate_failures, decision_gate_stats, decision_gate_combinations,
               decision_close_stats
        IN EXCLUSIVE MODE;
    DELETE FROM decision_stats;
    DELETE FROM decision_gate_failures;
    DELETE FROM decision_gate_stats;
    DELETE FROM decision_gate_combinations;
    DELETE FROM decision_close_stats;
    FOREACH upsert IN ARRAY decision_stats_upserts(everything, 0::SMALLINT)
                            || decision_gate_upserts(everything, 0::SMALLINT)
                            || decision_close_upserts(everything, 0::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
END
$$;

SELECT decision_stats_rebuild();
