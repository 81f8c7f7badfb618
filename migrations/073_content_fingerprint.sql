-- A fingerprint of every decision of a rollup bucket, not only its closed signals.
--
-- GetGateAnalytics (and GetStats' counts) read a window from the rollups of its
-- days and hours. Those of past buckets rarely change, so the service keeps
-- what it read of each bucket and reads again only the buckets whose
-- content_fingerprint changed: the sum of a 64-bit hash of each decision's id,
-- symbol, type, decision time and gates (everything those reads depend on),
-- kept by the same triggers as the counts, so exact in every snapshot. A row
-- inserted, deleted or edited by hand changes its bucket's fingerprint.

CREATE FUNCTION decision_content_hash(
    id UUID, symbol TEXT, decision_type TEXT, decided_at TIMESTAMPTZ, gates JSONB
) RETURNS NUMERIC LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended(
        concat_ws('|', id, symbol, decision_type, extract(epoch FROM decided_at), gates), 0)::NUMERIC
$$;

ALTER TABLE decision_stats ADD COLUMN content_fingerprint NUMERIC NOT NULL DEFAULT 0;

-- decision_stats_upserts of migration 071 with content_fingerprint.
CREATE OR REPLACE FUNCTION decision_stats_upserts(source TEXT, stripe SMALLINT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[
        format($upsert$
            INSERT INTO decision_stats AS s (
                span, bucket, symbol, stripe, total, signals, skips, risk_rejects, closed, wins,
                losses, r_multiple_sum, pnl_sum, closed_fingerprint, content_fingerprint
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
                                d.trader_count)), 0),
                   COALESCE(sum(d.sign * decision_content_hash(
                                d.id, d.symbol, d.decision_type, d.decided_at, d.gates)), 0)
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
                closed_fingerprint = s.closed_fingerprint + EXCLUDED.closed_fingerprint,
                content_fingerprint = s.content_fingerprint + EXCLUDED.content_fingerprint
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

-- decision_stats_compact of migration 067 with content_fingerprint (and the gate failures as there).
CREATE OR REPLACE FUNCTION decision_stats_compact(before TIMESTAMPTZ) RETURNS void LANGUAGE sql AS $$
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
        r_multiple_sum, pnl_sum, closed_fingerprint, content_fingerprint
    )
    SELECT span, bucket, symbol, 0, sum(total), sum(signals), sum(skips), sum(risk_rejects),
           sum(closed), sum(wins), sum(losses), sum(r_multiple_sum), sum(pnl_sum), sum(closed_fingerprint),
           sum(content_fingerprint)
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
        pnl_sum = s.pnl_sum + EXCLUDED.pnl_sum,
        closed_fingerprint = s.closed_fingerprint + EXCLUDED.closed_fingerprint,
        content_fingerprint = s.content_fingerprint + EXCLUDED.content_fingerprint;

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

-- The fingerprints of the rows already there, on one stripe of each bucket; the other columns
-- are unchanged.
LOCK TABLE decision_logs IN SHARE ROW EXCLUSIVE MODE;
LOCK TABLE decision_stats IN EXCLUSIVE MODE;
UPDATE decision_stats AS s SET content_fingerprint = f.fingerprint
FROM (
    SELECT spans.span, decision_stats_bucket(d.decided_at, spans.span) AS bucket, d.symbol,
           sum(decision_content_hash(d.id, d.symbol, d.decision_type, d.decided_at, d.gates)) AS fingerprint
    FROM decision_logs AS d, (VALUES (1::SMALLINT), (24::SMALLINT)) AS spans (span)
    GROUP BY 1, 2, 3
) AS f
WHERE s.span = f.span AND s.bucket = f.bucket AND s.symbol = f.symbol
  AND s.stripe = (SELECT min(stripe) FROM decision_stats AS o
                  WHERE o.span = s.span AND o.bucket = s.bucket AND o.symbol = s.symbol);
