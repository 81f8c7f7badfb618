-- GetStats from rollups instead of a scan of the window.
--
-- decision_stats_hourly holds, per UTC hour of decided_at and symbol, the
-- counts GetStats reports; decision_gate_failures_hourly how many decisions of
-- that hour and symbol failed each gate. Statement-level triggers keep both
-- exact in the same transaction as every insert, update (outcomes) and delete
-- of decision_logs, so a snapshot that reads them agrees with the rows. A
-- window is then answered from the rollups for its whole hours plus the raw
-- rows of the one partial hour at its start.
--
-- `stripe` spreads concurrent writers of one hour and symbol over several rows
-- (pg_backend_pid() % 8): each transaction holds its rollup rows locked until
-- it commits, and one row per hour and symbol would line every writer up
-- behind the previous one's commit. Readers sum the stripes; the service folds
-- the stripes of past hours into stripe 0 (decision_stats_compact) so a window
-- reads about one row per hour and symbol.

CREATE TABLE decision_stats_hourly (
    hour TIMESTAMPTZ NOT NULL,
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
    PRIMARY KEY (hour, symbol, stripe)
);

CREATE TABLE decision_gate_failures_hourly (
    hour TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    gate TEXT NOT NULL,
    stripe SMALLINT NOT NULL,
    failures BIGINT NOT NULL,
    PRIMARY KEY (hour, symbol, gate, stripe)
);

-- Add (delta = 1) or take away (delta = -1) the contribution of `changed` rows.
-- A failed gate counts once per decision, however often its name appears.
CREATE FUNCTION decision_stats_apply(changed decision_logs[], delta INT, stripe SMALLINT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO decision_stats_hourly AS s (
        hour, symbol, stripe, total, signals, skips, risk_rejects, closed, wins, losses,
        r_multiple_sum, pnl_sum
    )
    SELECT date_trunc('hour', d.decided_at, 'UTC'), d.symbol, stripe,
           delta * count(*),
           delta * count(*) FILTER (WHERE d.decision_type = 'signal'),
           delta * count(*) FILTER (WHERE d.decision_type = 'skip'),
           delta * count(*) FILTER (WHERE d.decision_type = 'risk_reject'),
           delta * count(*) FILTER (WHERE d.outcome_pnl IS NOT NULL),
           delta * count(*) FILTER (WHERE d.outcome_pnl > 0),
           delta * count(*) FILTER (WHERE d.outcome_pnl < 0),
           delta * COALESCE(sum(d.outcome_r_multiple), 0),
           delta * COALESCE(sum(d.outcome_pnl), 0)
    FROM unnest(changed) AS d
    GROUP BY 1, 2
    ON CONFLICT (hour, symbol, stripe) DO UPDATE SET
        total = s.total + EXCLUDED.total,
        signals = s.signals + EXCLUDED.signals,
        skips = s.skips + EXCLUDED.skips,
        risk_rejects = s.risk_rejects + EXCLUDED.risk_rejects,
        closed = s.closed + EXCLUDED.closed,
        wins = s.wins + EXCLUDED.wins,
        losses = s.losses + EXCLUDED.losses,
        r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum,
        pnl_sum = s.pnl_sum + EXCLUDED.pnl_sum;

    INSERT INTO decision_gate_failures_hourly AS g (hour, symbol, gate, stripe, failures)
    SELECT date_trunc('hour', d.decided_at, 'UTC'), d.symbol, failed.name, stripe, delta * count(*)
    FROM unnest(changed) AS d,
         LATERAL (
             SELECT DISTINCT gate->>'name' AS name
             FROM jsonb_array_elements(d.gates) AS gate
             WHERE (gate->>'passed')::boolean IS FALSE
         ) AS failed
    GROUP BY 1, 2, 3
    ON CONFLICT (hour, symbol, gate, stripe) DO UPDATE SET failures = g.failures + EXCLUDED.failures;
$$;

CREATE FUNCTION decision_stats_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stripe SMALLINT := pg_backend_pid() % 8;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM decision_stats_apply(ARRAY(SELECT o::decision_logs FROM old_rows AS o), -1, stripe);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM decision_stats_apply(ARRAY(SELECT n::decision_logs FROM new_rows AS n), 1, stripe);
    END IF;
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
    TRUNCATE decision_stats_hourly, decision_gate_failures_hourly;
    RETURN NULL;
END
$$;
CREATE TRIGGER decision_stats_truncate AFTER TRUNCATE ON decision_logs
    FOR EACH STATEMENT EXECUTE FUNCTION decision_stats_clear();

-- Fold the stripes of hours before `before` into stripe 0. Safe beside writers:
-- a stripe row being updated is deleted with its latest counts (the DELETE
-- waits for the writer and reads its committed row), and a writer that finds
-- its stripe row deleted inserts a new one.
CREATE FUNCTION decision_stats_compact(before TIMESTAMPTZ) RETURNS void LANGUAGE sql AS $$
    WITH moved AS (
        DELETE FROM decision_stats_hourly WHERE stripe <> 0 AND hour < before RETURNING *
    )
    INSERT INTO decision_stats_hourly AS s (
        hour, symbol, stripe, total, signals, skips, risk_rejects, closed, wins, losses,
        r_multiple_sum, pnl_sum
    )
    SELECT hour, symbol, 0, sum(total), sum(signals), sum(skips), sum(risk_rejects), sum(closed),
           sum(wins), sum(losses), sum(r_multiple_sum), sum(pnl_sum)
    FROM moved
    GROUP BY hour, symbol
    ON CONFLICT (hour, symbol, stripe) DO UPDATE SET
        total = s.total + EXCLUDED.total,
        signals = s.signals + EXCLUDED.signals,
        skips = s.skips + EXCLUDED.skips,
        risk_rejects = s.risk_rejects + EXCLUDED.risk_rejects,
        closed = s.closed + EXCLUDED.closed,
        wins = s.wins + EXCLUDED.wins,
        losses = s.losses + EXCLUDED.losses,
        r_multiple_sum = s.r_multiple_sum + EXCLUDED.r_multiple_sum,
        pnl_sum = s.pnl_sum + EXCLUDED.pnl_sum;

    WITH moved AS (
        DELETE FROM decision_gate_failures_hourly WHERE stripe <> 0 AND hour < before RETURNING *
    )
    INSERT INTO decision_gate_failures_hourly AS g (hour, symbol, gate, stripe, failures)
    SELECT hour, symbol, gate, 0, sum(failures) FROM moved GROUP BY hour, symbol, gate
    ON CONFLICT (hour, symbol, gate, stripe) DO UPDATE SET failures = g.failures + EXCLUDED.failures;
$$;

-- Recompute both rollups from decision_logs (this migration's backfill; also
-- after a bulk load made with triggers off), a day at a time to bound the
-- memory the row arrays take. Writers wait meanwhile.
CREATE FUNCTION decision_stats_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    day TIMESTAMPTZ;
BEGIN
    LOCK TABLE decision_logs IN SHARE MODE;
    DELETE FROM decision_stats_hourly;
    DELETE FROM decision_gate_failures_hourly;
    FOR day IN SELECT DISTINCT date_trunc('day', decided_at, 'UTC') FROM decision_logs LOOP
        PERFORM decision_stats_apply(
            ARRAY(SELECT d FROM decision_logs AS d
                  WHERE d.decided_at >= day AND d.decided_at < day + INTERVAL '24 hours'),
            1, 0::SMALLINT);
    END LOOP;
END
$$;

SELECT decision_stats_rebuild();
