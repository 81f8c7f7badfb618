-- GetStats from rollups instead of a scan of the window.
--
-- decision_stats holds, per symbol and UTC hour of decided_at (span 1) and
-- per symbol and UTC day (span 24), the counts GetStats reports;
-- decision_gate_failures how many decisions of that bucket failed each gate.
-- Statement-level triggers keep both exact in the same transaction as every
-- insert, update (outcomes) and delete of decision_logs, so a snapshot that
-- reads them agrees with the rows. A window is then answered from the days it
-- covers whole, the hours of its partial first day, and the raw rows of its
-- partial first hour: about a row per day and symbol, whatever the row count.
--
-- `stripe` spreads concurrent writers of one bucket and symbol over several
-- rows (pg_backend_pid() % 8): each transaction holds its rollup rows locked
-- until it commits, and one row per bucket and symbol would line every writer
-- up behind the previous one's commit. Readers sum the stripes; the service
-- folds the stripes of past buckets into stripe 0 (decision_stats_compact).

CREATE TABLE decision_stats (
    span SMALLINT NOT NULL CHECK (span IN (1, 24)),  -- hours
    bucket TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    stripe SMALLINT NOT NULL,
    total BIGINT NOT NULL,
    signals BIGINT NOT NULL,
    skips BIGINT NOT NULL,
    risk_rejects BIGINT NOT NULL,
    closed BIGINT NOT NULL,
    wins BIGINT NOT NULL,
    losses BIGINT NOT NULL,
    r_multiple_sum NUMERIC NOT NULL,
    pnl_sum NUMERIC NOT NULL,
    PRIMARY KEY (span, bucket, symbol, stripe)
);

CREATE TABLE decision_gate_failures (
    span SMALLINT NOT NULL CHECK (span IN (1, 24)),
    bucket TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    gate TEXT NOT NULL,
    stripe SMALLINT NOT NULL,
    failures BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, symbol, gate, stripe)
);

-- The bucket of `moment` in a span: its UTC hour or UTC day.
CREATE FUNCTION decision_stats_bucket(moment TIMESTAMPTZ, span SMALLINT) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc(CASE span WHEN 1 THEN 'hour' ELSE 'day' END, moment, 'UTC')
$$;

-- The two upserts that apply `source` to the rollups, as SQL text. `source` is a
-- query whose rows are decision_logs rows preceded by a `sign` column (1 to add a
-- row, -1 to take it away). Text, because only the trigger's own statements see
-- its transition tables: the trigger runs them itself. Rows are aggregated per
-- bucket, not collected in arrays (a statement may touch millions), and upserted
-- in key order, so concurrent writers lock shared rows in one order and never
-- deadlock. A failed gate counts once per decision, however often its name appears.
CREATE FUNCTION decision_stats_upserts(source TEXT, stripe SMALLINT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[
        format($upsert$
            INSERT INTO decision_stats AS s (
                span, bucket, symbol, stripe, total, signals, skips, risk_rejects, closed, wins,
                losses, r_multiple_sum, pnl_sum
            )
            SELECT spans.span, decision_stats_bucket(d.decided_at, spans.span), d.symbol, %1$s,
                   sum(d.sign),
                   COALESCE(sum(d.sign) FILTER (WHERE d.decision_type = 'signal'), 0),
                   COALESCE(sum(d.sign) FILTER (WHERE d.decision_type = 'skip'), 0),
                   COALESCE(sum(d.sign) FILTER (WHERE d.decision_type = 'risk_reject'), 0),
                   COALESCE(sum(d.sign) FILTER (WHERE d.outcome_pnl IS NOT NULL), 0),
                   COALESCE(sum(d.sign) FILTER (WHERE d.outcome_pnl > 0), 0),
                   COALESCE(sum(d.sign) FILTER (WHERE d.outcome_pnl < 0), 0),
                   COALESCE(sum(d.sign * d.outcome_r_multiple), 0),
                   COALESCE(sum(d.sign * d.outcome_pnl), 0)
            FROM (%2$s) AS d, (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span)
            GROUP BY 1, 2, 3
            ORDER BY 1, 2, 3
            ON CONFLICT (span, bucket, symbol, stripe) DO UPDATE SET
                total = s.total + EXCLUDED.total,
                signals = s.signals + EXCLUDED.signals,
                skips = s.skips + EXCLUDED.skips,
                risk_rejects = s.risk_rejects + EXCLUDED.risk_rejects,
                closed = s.closed + EXCLUDED.closed,
                wins = s.wins + EXCLUDED.wins,
                losses = s.losses + EXCLUDED.losses,
                r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum,
                pnl_sum = s.pnl_sum + EXCLUDED.pnl_sum
        $upsert$, stripe, source),
        format($upsert$
            INSERT INTO decision_gate_failures AS g (span, bucket, symbol, gate, stripe, failures)
            SELECT spans.span, decision_stats_bucket(d.decided_at, spans.span), d.symbol, failed.name,
                   %1$s, sum(d.sign)
            FROM (%2$s) AS d,
                 (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span),
                 LATERAL (
                     SELECT DISTINCT gate->>'name' AS name
                     FROM jsonb_array_elements(d.gates) AS gate
                     WHERE (gate->>'passed')::boolean IS FALSE
                 ) AS failed
            GROUP BY 1, 2, 3, 4
            HAVING sum(d.sign) <> 0
            ORDER BY 1, 2, 3, 4
            ON CONFLICT (span, bucket, symbol, gate, stripe)
                DO UPDATE SET failures = g.failures + EXCLUDED.failures
        $upsert$, stripe, source)
    ]
$$;

CREATE FUNCTION decision_stats_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    source TEXT := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows'
    END;
    upsert TEXT;
BEGIN
    FOREACH upsert IN ARRAY decision_stats_upserts(source, (pg_backend_pid() % 8)::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
    RETURN NULL;
END
$$;

-- Transition tables name only the tables their event has.
CREATE TRIGGER decision_stats_insert AFTER INSERT ON decision_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_stats_track();
CREATE TRIGGER decision_stats_update AFTER UPDATE ON decision_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_stats_track();
CREATE TRIGGER decision_stats_delete AFTER DELETE ON decision_logs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_stats_track();

CREATE FUNCTION decision_stats_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE decision_stats, decision_gate_failures;
    RETURN NULL;
END
$$;
CREATE TRIGGER decision_stats_truncate AFTER TRUNCATE ON decision_logs
    FOR EACH STATEMENT EXECUTE FUNCTION decision_stats_clear();

-- Fold the stripes of buckets that ended before `before` into stripe 0. It never
-- waits for a writer: it takes the stripe rows no one holds (in key order) and
-- leaves the others to its next run; a writer that finds its stripe row gone
-- inserts a new one.
CREATE FUNCTION decision_stats_compact(before TIMESTAMPTZ) RETURNS void LANGUAGE sql AS $$
    WITH picked AS (
        SELECT span, bucket, symbol, stripe FROM decision_stats
        WHERE stripe <> 0 AND bucket + make_interval(hours => span) <= before
        ORDER BY span, bucket, symbol, stripe
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM decision_stats AS s USING picked AS p
        WHERE (s.span, s.bucket, s.symbol, s.stripe) = (p.span, p.bucket, p.symbol, p.stripe)
        RETURNING s.*
    )
    INSERT INTO decision_stats AS s (
        span, bucket, symbol, stripe, total, signals, skips, risk_rejects, closed, wins, losses,
        r_multiple_sum, pnl_sum
    )
    SELECT span, bucket, symbol, 0, sum(total), sum(signals), sum(skips), sum(risk_rejects),
           sum(closed), sum(wins), sum(losses), sum(r_multiple_sum), sum(pnl_sum)
    FROM moved
    GROUP BY span, bucket, symbol
    ORDER BY span, bucket, symbol
    ON CONFLICT (span, bucket, symbol, stripe) DO UPDATE SET
        total = s.total + EXCLUDED.total,
        signals = s.signals + EXCLUDED.signals,
        skips = s.skips + EXCLUDED.skips,
        risk_rejects = s.risk_rejects + EXCLUDED.risk_rejects,
        closed = s.closed + EXCLUDED.closed,
        wins = s.wins + EXCLUDED.wins,
        losses = s.losses + EXCLUDED.losses,
        r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum,
        pnl_sum = s.pnl_sum + EXCLUDED.pnl_sum;

    WITH picked AS (
        SELECT span, bucket, symbol, gate, stripe FROM decision_gate_failures
        WHERE stripe <> 0 AND bucket + make_interval(hours => span) <= before
        ORDER BY span, bucket, symbol, gate, stripe
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM decision_gate_failures AS g USING picked AS p
        WHERE (g.span, g.bucket, g.symbol, g.gate, g.stripe) = (p.span, p.bucket, p.symbol, p.gate, p.stripe)
        RETURNING g.*
    )
    INSERT INTO decision_gate_failures AS g (span, bucket, symbol, gate, stripe, failures)
    SELECT span, bucket, symbol, gate, 0, sum(failures) FROM moved
    GROUP BY span, bucket, symbol, gate
    ORDER BY span, bucket, symbol, gate
    ON CONFLICT (span, bucket, symbol, gate, stripe) DO UPDATE SET failures = g.failures + EXCLUDED.failures;
$$;

-- Recompute both rollups from decision_logs (this migration's backfill; also
-- after a bulk load made with triggers off). Writers, the compaction and another
-- rebuild wait meanwhile: both locks conflict with themselves and with writers.
CREATE FUNCTION decision_stats_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    upsert TEXT;
BEGIN
    LOCK TABLE decision_logs IN SHARE ROW EXCLUSIVE MODE;
    LOCK TABLE decision_stats, decision_gate_failures IN EXCLUSIVE MODE;
    DELETE FROM decision_stats;
    DELETE FROM decision_gate_failures;
    FOREACH upsert IN ARRAY decision_stats_upserts('SELECT 1 AS sign, * FROM decision_logs', 0::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
END
$$;

SELECT decision_stats_rebuild();
