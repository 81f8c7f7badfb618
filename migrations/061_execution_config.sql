-- Execution on Hyperliquid (Phase 3e plan, section 3), with what correctness needs on top:
-- a single-row config updated under a row lock and audited, at most one execution per
-- decision, the order's cloid, a reason code, the 'unknown' status, where each execution ran,
-- and risk-context columns wide enough for leveraged accounts.

CREATE TABLE execution_config (
    id INT PRIMARY KEY DEFAULT 1,
    enabled BOOLEAN NOT NULL DEFAULT false,
    hl_enabled BOOLEAN NOT NULL DEFAULT false,
    dry_run BOOLEAN NOT NULL DEFAULT true,
    hl_max_leverage INT NOT NULL DEFAULT 3,
    -- The plan's DECIMAL(5,4) cannot hold an exposure limit above 9.9999 or
    -- fractions finer than 0.0001: widened to 8 decimals, 2 integer digits.
    hl_max_position_pct DECIMAL(10,8) NOT NULL DEFAULT 0.02,
    hl_max_exposure_pct DECIMAL(10,8) NOT NULL DEFAULT 0.10,
    hl_slippage_pct DECIMAL(10,8) NOT NULL DEFAULT 0.01,
    max_signal_age_s INT NOT NULL DEFAULT 120,
    max_price_drift_pct DECIMAL(10,8) NOT NULL DEFAULT 0.01,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT execution_config_single_row CHECK (id = 1),
    CONSTRAINT execution_config_leverage_check CHECK (hl_max_leverage BETWEEN 1 AND 50),
    CONSTRAINT execution_config_position_check CHECK (hl_max_position_pct > 0 AND hl_max_position_pct <= 1),
    CONSTRAINT execution_config_exposure_check CHECK (hl_max_exposure_pct > 0 AND hl_max_exposure_pct <= 10),
    CONSTRAINT execution_config_slippage_check CHECK (hl_slippage_pct > 0 AND hl_slippage_pct <= 0.1),
    CONSTRAINT execution_config_age_check CHECK (max_signal_age_s BETWEEN 1 AND 86400),
    CONSTRAINT execution_config_drift_check CHECK (max_price_drift_pct > 0 AND max_price_drift_pct <= 1)
);

-- A new database starts with execution disabled, in dry run, at the plan's limits.
INSERT INTO execution_config (id) VALUES (1);

-- Append-only history of config changes, one row per changed field.
CREATE TABLE execution_config_audit (
    id BIGSERIAL PRIMARY KEY,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    changed_by TEXT,
    field TEXT NOT NULL,
    old_value JSONB NOT NULL,
    new_value JSONB NOT NULL
);

CREATE FUNCTION execution_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END;
$$;

CREATE TRIGGER execution_config_audit_no_change
    BEFORE UPDATE OR DELETE ON execution_config_audit
    FOR EACH ROW EXECUTE FUNCTION execution_refuse_change('execution_config_audit is append-only');
CREATE TRIGGER execution_config_audit_no_truncate
    BEFORE TRUNCATE ON execution_config_audit
    FOR EACH STATEMENT EXECUTE FUNCTION execution_refuse_change('execution_config_audit is append-only');

-- The config row is updated, never removed: every execution reads it.
CREATE TRIGGER execution_config_no_delete
    BEFORE DELETE ON execution_config
    FOR EACH ROW EXECUTE FUNCTION execution_refuse_change('the execution_config row cannot be deleted');
CREATE TRIGGER execution_config_no_truncate
    BEFORE TRUNCATE ON execution_config
    FOR EACH STATEMENT EXECUTE FUNCTION execution_refuse_change('the execution_config row cannot be deleted');

CREATE TABLE execution_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    decision_id UUID NOT NULL REFERENCES decision_logs(id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Order details. size is the requested size (0 when rejected before sizing).
    symbol VARCHAR(16) NOT NULL,
    side VARCHAR(8) NOT NULL,
    size DECIMAL(20,8) NOT NULL DEFAULT 0,
    leverage INT NOT NULL,
    cloid VARCHAR(34) NOT NULL,
    mid_price DECIMAL(20,8),
    limit_price DECIMAL(20,8),
    -- After this time an order the exchange does not know was never placed.
    order_expires_at TIMESTAMPTZ NOT NULL,

    -- Where it ran.
    network VARCHAR(8) NOT NULL,
    account_address VARCHAR(42),
    dry_run BOOLEAN NOT NULL,

    -- Result
    status VARCHAR(16) NOT NULL DEFAULT 'pending',
    reason VARCHAR(32),
    fill_price DECIMAL(20,8),
    fill_size DECIMAL(20,8),
    error_message TEXT,
    exchange_order_id BIGINT,

    -- Risk context, as fractions of account value (exposure can exceed 10x).
    position_pct DECIMAL(12,6),
    exposure_before DECIMAL(12,6),
    exposure_after DECIMAL(12,6),

    CONSTRAINT execution_logs_one_per_decision UNIQUE (decision_id),
    CONSTRAINT execution_logs_cloid_key UNIQUE (cloid),
    CONSTRAINT execution_logs_side_check CHECK (side IN ('buy', 'sell')),
    CONSTRAINT execution_logs_size_check CHECK (size >= 0),
    CONSTRAINT execution_logs_network_check CHECK (network IN ('mainnet', 'testnet')),
    CONSTRAINT execution_logs_status_check CHECK (
        status IN ('pending', 'filled', 'partially_filled', 'rejected', 'failed', 'unknown', 'simulated')
    ),
    CONSTRAINT execution_logs_cloid_check CHECK (cloid ~ '^0x[0-9a-f]{32}$')
);

CREATE INDEX idx_execution_logs_created ON execution_logs (created_at DESC, id DESC);
CREATE INDEX idx_execution_logs_status ON execution_logs (status, created_at DESC, id DESC);
-- What reconciliation looks for.
CREATE INDEX idx_execution_logs_unsettled ON execution_logs (order_expires_at)
    WHERE status IN ('pending', 'unknown');

-- The last nonce each signer used, so nonces strictly increase across replicas.
CREATE TABLE signer_nonces (
    signer VARCHAR(42) PRIMARY KEY,
    last_nonce BIGINT NOT NULL
);
