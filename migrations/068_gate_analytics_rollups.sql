-- GetGateAnalytics from rollups instead of a scan of the window's gates.
--
-- The same scheme as GetStats' rollups (migration 065): per UTC hour (span 1)
-- and day (span 24) of decided_at, per symbol, striped per writing backend,
-- kept exact by statement-level triggers in the writing transaction, folded
-- into stripe 0 by decision_gate_stats_compact, rebuilt by
-- decision_stats_rebuild. A window reads whole days, the hours of its partial
-- first day and at most half an hour of raw rows.
--
-- decision_gate_stats counts gate results by everything GetGateAnalytics
-- reports: the gate, whether it passed, where its value lay relative to its
-- threshold, the near-miss bin of a failed value and whether it was the
-- decision's only failed gate. decision_gate_combinations counts SKIP
-- decisions by their exact set of failed gates.

-- One decision's gates as the analytics count them. `side`: -1 the value is
-- below its threshold, 0 equal, 1 above, 2 no value or no threshold. `bin`: for
-- a failed gate with both, the near-miss bin of |value - threshold| /
-- |threshold| (|value - threshold| when the threshold is 0), 0-7 for the
-- edges 0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1 (NEAR_MISS_EDGES in
-- sigma_grpc/domain/quality.py; a test keeps them equal); -1 otherwise. A gate
-- without `passed` counts as passed, as in GetStats' failures. A gate named
-- twice in one decision (rows stored before sigma.v1) counts once, as failed if
-- any of its entries failed; a gate without a name (rows of migration 060's
-- rules) is left out, and a value that is not a JSON number counts as none.
CREATE FUNCTION decision_gate_entries(gates JSONB)
RETURNS TABLE (name TEXT, passed BOOLEAN, side SMALLINT, bin SMALLINT, alone BOOLEAN)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT e.name, e.passed,
           (CASE WHEN e.v IS NULL OR e.t IS NULL THEN 2 ELSE sign(e.v - e.t) END)::SMALLINT,
           (CASE WHEN e.passed OR e.v IS NULL OR e.t IS NULL THEN -1
                 WHEN abs(e.v - e.t) >= COALESCE(NULLIF(abs(e.t), 0), 1) THEN 7
                 ELSE width_bucket(abs(e.v - e.t) / COALESCE(NULLIF(abs(e.t), 0), 1),
                                   '{0,0.01,0.02,0.05,0.1,0.2,0.5,1}'::float8[]) - 1 END)::SMALLINT,
           NOT e.passed AND e.failed_gates = 1
    FROM (
        SELECT DISTINCT ON (g->>'name')
               g->>'name' AS name,
               (g->>'passed')::boolean IS NOT FALSE AS passed,
               CASE WHEN jsonb_typeof(g->'value') = 'number' THEN (g->>'value')::float8 END AS v,
               CASE WHEN jsonb_typeof(g->'threshold') = 'number' THEN (g->>'threshold')::float8 END AS t,
               (SELECT count(DISTINCT o->>'name') + count(*) FILTER (WHERE o->>'name' IS NULL)
                FROM jsonb_array_elements(gates) AS o
                WHERE (o->>'passed')::boolean IS FALSE) AS failed_gates
        FROM jsonb_array_elements(gates) WITH ORDINALITY AS entries (g, position)
        WHERE g->>'name' IS NOT NULL
        ORDER BY g->>'name', (g->>'passed')::boolean IS NOT FALSE, position
    ) AS e
$$;

-- The names of a decision's failed gates, sorted byte-wise and joined by ','
-- (a gate name has no comma); NULL when none failed.
CREATE FUNCTION decision_failed_gates(gates JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(name, ',' ORDER BY name)
    FROM (
        SELECT DISTINCT (g->>'name') COLLATE "C" AS name
        FROM jsonb_array_elements(gates) AS g
        WHERE (g->>'passed')::boolean IS FALSE
    ) AS failed
$$;

CREATE TABLE decision_gate_stats (
    span SMALLINT NOT NULL CHECK (span IN (1, 24)),
    bucket TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    gate TEXT NOT NULL,
    passed BOOLEAN NOT NULL,
    side SMALLINT NOT NULL,
    bin SMALLINT NOT NULL,
    alone BOOLEAN NOT NULL,
    stripe SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, symbol, gate, passed, side, bin, alone, stripe)
);

CREATE TABLE decision_gate_combinations (
    span SMALLINT NOT NULL CHECK (span IN (1, 24)),
    bucket TIMESTAMPTZ NOT NULL,
    symbol VARCHAR(16) NOT NULL,
    failed TEXT NOT NULL,
    stripe SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, symbol, failed, stripe)
);

-- The upserts that apply `source` (decision_logs rows preceded by `sign`) to
-- both tables, as SQL text, in key order: see decision_stats_upserts.
CREATE FUNCTION decision_gate_upserts(source TEXT, stripe SMALLINT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[
        format($upsert$
            INSERT INTO decision_gate_stats AS s (span, bucket, symbol, gate, passed, side, bin, alone, stripe, n)
            SELECT spans.span, decision_stats_bucket(d.decided_at, spans.span), d.symbol, e.name, e.passed,
                   e.side, e.bin, e.alone, %1$s, sum(d.sign)
            FROM (%2$s) AS d,
                 (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span),
                 decision_gate_entries(d.gates) AS e
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
            HAVING sum(d.sign) <> 0
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
            ON CONFLICT (span, bucket, symbol, gate, passed, side, bin, alone, stripe)
                DO UPDATE SET n = s.n + EXCLUDED.n
        $upsert$, stripe, source),
        format($upsert$
            INSERT INTO decision_gate_combinations AS c (span, bucket, symbol, failed, stripe, n)
            SELECT spans.span, decision_stats_bucket(d.decided_at, spans.span), d.symbol, f.failed, %1$s,
                   sum(d.sign)
            FROM (%2$s) AS d,
                 (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span),
                 LATERAL (SELECT decision_failed_gates(d.gates) AS failed) AS f
            WHERE d.decision_type = 'skip' AND f.failed IS NOT NULL
            GROUP BY 1, 2, 3, 4
            HAVING sum(d.sign) <> 0
            ORDER BY 1, 2, 3, 4
            ON CONFLICT (span, bucket, symbol, failed, stripe) DO UPDATE SET n = c.n + EXCLUDED.n
        $upsert$, stripe, source)
    ]
$$;

CREATE FUNCTION decision_gate_stats_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    source TEXT := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows'
    END;
    upsert TEXT;
BEGIN
    FOREACH upsert IN ARRAY decision_gate_upserts(source, (pg_backend_pid() % 8)::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER decision_gate_stats_insert AFTER INSERT ON decision_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_gate_stats_track();
-- Outcomes (the service's only updates) change none of these columns; transition
-- tables cannot go with a column list, so any other update is tracked too.
CREATE TRIGGER decision_gate_stats_update AFTER UPDATE ON decision_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_gate_stats_track();
CREATE TRIGGER decision_gate_stats_delete AFTER DELETE ON decision_logs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION decision_gate_stats_track();

CREATE FUNCTION decision_gate_stats_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE decision_gate_stats, decision_gate_combinations;
    RETURN NULL;
END
$$;
CREATE TRIGGER decision_gate_stats_truncate AFTER TRUNCATE ON decision_logs
    FOR EACH STATEMENT EXECUTE FUNCTION decision_gate_stats_clear();

-- Fold the stripes of buckets that ended before `before` into stripe 0, never
-- waiting for a writer: see decision_stats_compact.
CREATE FUNCTION decision_gate_stats_compact(before TIMESTAMPTZ) RETURNS void LANGUAGE sql AS $$
    WITH picked AS (
        SELECT span, bucket, symbol, gate, passed, side, bin, alone, stripe FROM decision_gate_stats
        WHERE stripe <> 0 AND bucket + make_interval(hours => span) <= before
        ORDER BY span, bucket, symbol, gate, passed, side, bin, alone, stripe
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM decision_gate_stats AS s USING picked AS p
        WHERE (s.span, s.bucket, s.symbol, s.gate, s.passed, s.side, s.bin, s.alone, s.stripe)
            = (p.span, p.bucket, p.symbol, p.gate, p.passed, p.side, p.bin, p.alone, p.stripe)
        RETURNING s.*
    )
    INSERT INTO decision_gate_stats AS s (span, bucket, symbol, gate, passed, side, bin, alone, stripe, n)
    SELECT span, bucket, symbol, gate, passed, side, bin, alone, 0, sum(n) FROM moved
    GROUP BY span, bucket, symbol, gate, passed, side, bin, alone
    ORDER BY span, bucket, symbol, gate, passed, side, bin, alone
    ON CONFLICT (span, bucket, symbol, gate, passed, side, bin, alone, stripe)
        DO UPDATE SET n = s.n + EXCLUDED.n;

    WITH picked AS (
        SELECT span, bucket, symbol, failed, stripe FROM decision_gate_combinations
        WHERE stripe <> 0 AND bucket + make_interval(hours => span) <= before
        ORDER BY span, bucket, symbol, failed, stripe
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM decision_gate_combinations AS c USING picked AS p
        WHERE (c.span, c.bucket, c.symbol, c.failed, c.stripe) = (p.span, p.bucket, p.symbol, p.failed, p.stripe)
        RETURNING c.*
    )
    INSERT INTO decision_gate_combinations AS c (span, bucket, symbol, failed, stripe, n)
    SELECT span, bucket, symbol, failed, 0, sum(n) FROM moved
    GROUP BY span, bucket, symbol, failed
    ORDER BY span, bucket, symbol, failed
    ON CONFLICT (span, bucket, symbol, failed, stripe) DO UPDATE SET n = c.n + EXCLUDED.n;
$$;

-- decision_stats_rebuild of migration 065, rebuilding these rollups too.
CREATE OR REPLACE FUNCTION decision_stats_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    upsert TEXT;
BEGIN
    LOCK TABLE decision_logs IN SHARE ROW EXCLUSIVE MODE;
    LOCK TABLE decision_stats, decision_gate_failures, decision_gate_stats, decision_gate_combinations
        IN EXCLUSIVE MODE;
    DELETE FROM decision_stats;
    DELETE FROM decision_gate_failures;
    DELETE FROM decision_gate_stats;
    DELETE FROM decision_gate_combinations;
    FOREACH upsert IN ARRAY decision_stats_upserts('SELECT 1 AS sign, * FROM decision_logs', 0::SMALLINT)
                            || decision_gate_upserts('SELECT 1 AS sign, * FROM decision_logs', 0::SMALLINT) LOOP
        EXECUTE upsert;
    END LOOP;
END
$$;

SELECT decision_stats_rebuild();
