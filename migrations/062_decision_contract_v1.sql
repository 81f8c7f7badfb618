-- sigma.v1's rules for the decision log, enforced by the database as well as the API.
--
-- request_hash: SHA-256 of the normalised LogDecision request stored with its
-- request_id, so a retry (same id, same content) is told apart from a reused id
-- (same id, other content) without a read-then-write race: the UNIQUE
-- (request_id) insert decides which request wins, the hash decides what the
-- loser was. Rows stored before this migration have no hash; a request reusing
-- one of their ids is answered as a replay, as it was then.
ALTER TABLE decision_logs ADD COLUMN request_hash BYTEA;
ALTER TABLE decision_logs ADD CONSTRAINT decision_logs_request_hash_check
    CHECK (request_hash IS NULL OR (request_id IS NOT NULL AND octet_length(request_hash) = 32));

-- What each decision type means (gate and risk-check name uniqueness is left to
-- the API: comparing array elements needs more than a row check).
--   signal:      >= 1 gate, every gate and risk check passed, >= 1 trader
--   risk_reject: >= 1 gate, every gate passed, >= 1 failed risk check, >= 1 trader
--   skip:        >= 1 failed gate
-- A trigger, not a CHECK: rows stored under 060's looser rules must stay
-- updatable (RecordOutcome on an old signal), and a CHECK, even NOT VALID, is
-- evaluated on every update of a row. The trigger checks every inserted row and
-- every update of the columns the rules read.
CREATE FUNCTION decision_logs_type_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    failed_gate BOOLEAN := jsonb_path_exists(NEW.gates, '$[*] ? (@.passed == false)');
    failed_check BOOLEAN := jsonb_path_exists(NEW.risk_checks, '$[*] ? (@.passed == false)');
    consensus BOOLEAN := jsonb_array_length(NEW.gates) >= 1 AND NEW.trader_count >= 1 AND NOT failed_gate;
    valid BOOLEAN;
BEGIN
    IF NEW.decision_type = 'signal' THEN
        valid := consensus AND NOT failed_check;
    ELSIF NEW.decision_type = 'risk_reject' THEN
        valid := consensus AND failed_check;
    ELSE
        valid := failed_gate;
    END IF;
    IF NOT valid THEN
        RAISE EXCEPTION 'a % decision breaks the rules of its type', NEW.decision_type
            USING ERRCODE = 'check_violation', CONSTRAINT = 'decision_logs_type_rules_check',
                  TABLE = 'decision_logs';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER decision_logs_type_rules
    BEFORE INSERT OR UPDATE OF decision_type, gates, risk_checks, trader_count ON decision_logs
    FOR EACH ROW EXECUTE FUNCTION decision_logs_type_rules();
