-- Execution's record of what really happened, and nothing that lets it be rewritten.
--
-- execution_events: one row per state change of an execution (the claim, each
-- status, reason or message it takes, and the moment it is priced, about to be
-- signed), written by a trigger in the same transaction as the change, so no
-- code path can change an execution without leaving its history. Append-only:
-- never updated, deleted or truncated, and written only by that trigger.
-- execution_logs.changed_by says what in the service made the latest change;
-- the event keeps it, and the database role that made it.

ALTER TABLE execution_logs ADD COLUMN changed_by VARCHAR(32) NOT NULL DEFAULT 'execute_signal';

CREATE TABLE execution_events (
    id BIGSERIAL PRIMARY KEY,
    execution_id UUID NOT NULL REFERENCES execution_logs(id),
    -- clock_timestamp(): changes within one transaction keep their order in time too.
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    from_status VARCHAR(16),
    to_status VARCHAR(16) NOT NULL,
    reason VARCHAR(32),
    error_message TEXT,
    actor VARCHAR(32) NOT NULL,
    db_user TEXT NOT NULL DEFAULT current_user
);
CREATE INDEX idx_execution_events_execution ON execution_events (execution_id, id);

CREATE FUNCTION execution_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_events (execution_id, from_status, to_status, reason, error_message, actor)
    VALUES (
        NEW.id,
        CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
        NEW.status,
        NEW.reason,
        NEW.error_message,
        NEW.changed_by
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER execution_logs_event_on_insert
    AFTER INSERT ON execution_logs
    FOR EACH ROW EXECUTE FUNCTION execution_record_event();
CREATE TRIGGER execution_logs_event_on_change
    AFTER UPDATE ON execution_logs
    FOR EACH ROW
    WHEN (
        OLD.status IS DISTINCT FROM NEW.status
        OR OLD.reason IS DISTINCT FROM NEW.reason
        OR OLD.error_message IS DISTINCT FROM NEW.error_message
        OR OLD.limit_price IS DISTINCT FROM NEW.limit_price
    )
    EXECUTE FUNCTION execution_record_event();

CREATE FUNCTION execution_events_by_trigger_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'execution_events is written only by the triggers of execution_logs';
    END IF;
    NEW.recorded_at := clock_timestamp();
    NEW.db_user := current_user;
    RETURN NEW;
END
$$;

CREATE TRIGGER execution_events_insert_guard
    BEFORE INSERT ON execution_events
    FOR EACH ROW EXECUTE FUNCTION execution_events_by_trigger_only();
CREATE TRIGGER execution_events_no_change
    BEFORE UPDATE OR DELETE ON execution_events
    FOR EACH ROW EXECUTE FUNCTION execution_refuse_change('execution_events is append-only');
CREATE TRIGGER execution_events_no_truncate
    BEFORE TRUNCATE ON execution_events
    FOR EACH STATEMENT EXECUTE FUNCTION execution_refuse_change('execution_events is append-only');

-- An execution row is the claim that keeps a decision from being executed twice:
-- removing it, or changing what it claimed, would let the next call claim the
-- decision again and sign a second order. A settled outcome is final.
CREATE FUNCTION execution_logs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status NOT IN ('pending', 'unknown') THEN
        RAISE EXCEPTION 'execution % is settled (%): its record is final', OLD.id, OLD.status;
    END IF;
    IF (NEW.id, NEW.decision_id, NEW.cloid, NEW.symbol, NEW.side, NEW.network, NEW.account_address,
        NEW.dry_run, NEW.created_at, NEW.order_expires_at)
       IS DISTINCT FROM
       (OLD.id, OLD.decision_id, OLD.cloid, OLD.symbol, OLD.side, OLD.network, OLD.account_address,
        OLD.dry_run, OLD.created_at, OLD.order_expires_at) THEN
        RAISE EXCEPTION 'what execution % claimed (decision, cloid, symbol, side, account, network, mode, '
                        'expiry) cannot change', OLD.id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER execution_logs_guard
    BEFORE UPDATE ON execution_logs
    FOR EACH ROW EXECUTE FUNCTION execution_logs_guard();
CREATE TRIGGER execution_logs_no_delete
    BEFORE DELETE ON execution_logs
    FOR EACH ROW EXECUTE FUNCTION execution_refuse_change('execution_logs rows cannot be deleted');
CREATE TRIGGER execution_logs_no_truncate
    BEFORE TRUNCATE ON execution_logs
    FOR EACH STATEMENT EXECUTE FUNCTION execution_refuse_change('execution_logs rows cannot be deleted');

-- Reconciliation pages through the unsettled rows of its network in expiry order.
DROP INDEX idx_execution_logs_unsettled;
CREATE INDEX idx_execution_logs_unsettled ON execution_logs (network, order_expires_at, id)
    WHERE status IN ('pending', 'unknown');
