-- The decision log (Phase 3e plan, section 1), with what correctness needs on top:
-- decided_at (when hl-decide evaluated; lists and stats use it), an idempotency
-- key, CHECK constraints that mirror the API's validation so no path can store
-- what the API would refuse, and indexes matching the list filters and the
-- stats window. gen_random_uuid() is core since PostgreSQL 13 (no pgcrypto).

CREATE TABLE decision_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    decided_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    request_id VARCHAR(128),

    -- Signal identification
    symbol VARCHAR(16) NOT NULL,
    direction VARCHAR(8) NOT NULL,
    decision_type VARCHAR(16) NOT NULL,

    -- Inputs (aggregated, no addresses)
    trader_count INT NOT NULL,
    agreement_pct DECIMAL(5,4) NOT NULL,
    effective_k DECIMAL(6,3) NOT NULL,
    avg_confidence DECIMAL(5,4),
    ev_estimate DECIMAL(8,4),
    price_at_decision DECIMAL(20,8),

    -- [{"name": "supermajority", "passed": true, "value": 0.70, "threshold": 0.70}]
    gates JSONB NOT NULL,
    -- [{"name": "max_exposure", "passed": false, "value": 0.12, "limit": 0.10}]
    risk_checks JSONB NOT NULL DEFAULT '[]'::jsonb,

    reasoning TEXT NOT NULL,

    -- Outcome, set once when the position closes
    outcome_pnl DECIMAL(20,8),
    outcome_r_multiple DECIMAL(8,4),
    outcome_closed_at TIMESTAMPTZ,

    CONSTRAINT decision_logs_request_id_key UNIQUE (request_id),
    CONSTRAINT decision_logs_symbol_check CHECK (symbol ~ '^[A-Za-z0-9]{1,16}$'),
    CONSTRAINT decision_logs_direction_check CHECK (direction IN ('long', 'short', 'none')),
    CONSTRAINT decision_logs_type_check CHECK (decision_type IN ('signal', 'skip', 'risk_reject')),
    CONSTRAINT decision_logs_signal_direction_check
        CHECK (decision_type <> 'signal' OR direction IN ('long', 'short')),
    CONSTRAINT decision_logs_trader_count_check CHECK (trader_count >= 0),
    CONSTRAINT decision_logs_agreement_check CHECK (agreement_pct BETWEEN 0 AND 1),
    CONSTRAINT decision_logs_effective_k_check CHECK (effective_k >= 0),
    CONSTRAINT decision_logs_confidence_check CHECK (avg_confidence BETWEEN 0 AND 1),
    CONSTRAINT decision_logs_price_check CHECK (price_at_decision > 0),
    CONSTRAINT decision_logs_request_id_check CHECK (request_id ~ '^[ -~]{1,128}$'),
    CONSTRAINT decision_logs_gates_check
        CHECK (jsonb_typeof(gates) = 'array' AND jsonb_array_length(gates) <= 64),
    CONSTRAINT decision_logs_risk_checks_check
        CHECK (jsonb_typeof(risk_checks) = 'array' AND jsonb_array_length(risk_checks) <= 64),
    -- An outcome is all three fields or none, and only signals have one.
    CONSTRAINT decision_logs_outcome_complete_check CHECK (
        (outcome_pnl IS NULL) = (outcome_r_multiple IS NULL)
        AND (outcome_pnl IS NULL) = (outcome_closed_at IS NULL)
    ),
    CONSTRAINT decision_logs_outcome_signal_check
        CHECK (outcome_pnl IS NULL OR decision_type = 'signal'),
    CONSTRAINT decision_logs_outcome_after_decision_check
        CHECK (outcome_closed_at IS NULL OR outcome_closed_at >= decided_at)
);

-- The plan's indexes.
CREATE INDEX idx_decision_logs_created ON decision_logs (created_at DESC);
CREATE INDEX idx_decision_logs_symbol ON decision_logs (symbol, created_at DESC);
CREATE INDEX idx_decision_logs_type ON decision_logs (decision_type);

-- Lists are ordered by (decided_at, id) descending and paged by keyset; the
-- stats window is a range on decided_at. One index per common filter keeps
-- every page an index range scan.
CREATE INDEX idx_decision_logs_decided ON decision_logs (decided_at DESC, id DESC);
CREATE INDEX idx_decision_logs_symbol_decided ON decision_logs (symbol, decided_at DESC, id DESC);
CREATE INDEX idx_decision_logs_type_decided ON decision_logs (decision_type, decided_at DESC, id DESC);
-- Pending signals are what outcome tracking looks for.
CREATE INDEX idx_decision_logs_pending_signals ON decision_logs (decided_at DESC, id DESC)
    WHERE decision_type = 'signal' AND outcome_pnl IS NULL;
