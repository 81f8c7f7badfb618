-- Fixes from a review of migrations 067-070, each with a test that failed first
-- (tests/test_analytics_review.py):
--
-- 1. A failed gate whose distance from a tiny threshold overflows float8
--    (value 1e15, threshold 1e-294: both valid) made the insert trigger fail.
--    A distance of 1 or more is now recognised without dividing.
-- 2. A gate named twice in one decision (rows stored before sigma.v1) counted
--    twice and was never "alone". Now each gate counts once per decision: as
--    failed when any of its entries failed, like GetStats' gate failures.
-- 3. Rows stored under migration 060's rules (a gate without a name, a value
--    that is not a number) made migration 068's rollup rebuild, and the
--    triggers, fail. A gate without a name is left out of the gate analytics
--    (it still counts toward the decision's failures), and a value that is not
--    a JSON number counts as no value. Migration 068 itself carries this
--    definition too (corrected in place: it was never released), so it applies
--    to such a database.
-- 4. The closed-set fingerprint (067) hashed ids only, so a row changed by hand
--    (its decision time, close time, outcome or consensus) kept its fingerprint
--    and the server answered from figures computed before the change. It now
--    hashes everything those figures read.

CREATE OR REPLACE FUNCTION decision_gate_entries(gates JSONB)
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

-- What a closed signal contributes to its bucket's closed_fingerprint: a 64-bit
-- hash of everything the closed-signal figures read; 0 for a row without an
-- outcome. Times as epoch numbers, so the text does not depend on the session.
CREATE FUNCTION decision_closed_hash(
    id UUID, symbol TEXT, decision_type TEXT, decided_at TIMESTAMPTZ, closed_at TIMESTAMPTZ,
    pnl NUMERIC, r_multiple NUMERIC, agreement NUMERIC, effective_k NUMERIC, trader_count INT
) RETURNS NUMERIC LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pnl IS NULL THEN 0 ELSE hashtextextended(concat_ws('|',
        id, symbol, decision_type, extract(epoch FROM decided_at), extract(epoch FROM closed_at),
        pnl, r_multiple, agreement, effective_k, trader_count), 0)::NUMERIC END
$$;

-- decision_stats_upserts of migration 067 with that hash.
CREATE OR REPLACE FUNCTION decision_stats_upserts(source TEXT, stripe SMALLINT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[
        format($upsert$
            INSERT INTO decision_stats AS s (
                span, bucket, symbol, stripe, total, signals, skips, risk_rejects, closed, wins,
                losses, r_multiple_sum, pnl_sum, closed_fingerprint
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
                   COALESCE(sum(d.sign * d.outcome_pnl), 0),
                   COALESCE(sum(d.sign * decision_closed_hash(
                                d.id, d.symbol, d.decision_type, d.decided_at, d.outcome_closed_at,
                                d.outcome_pnl, d.outcome_r_multiple, d.agreement_pct, d.effective_k,
                                d.trader_count)), 0)
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
                pnl_sum = s.pnl_sum + EXCLUDED.pnl_sum,
                closed_fingerprint = s.closed_fingerprint + EXCLUDED.closed_fingerprint
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

SELECT decision_stats_rebuild();
