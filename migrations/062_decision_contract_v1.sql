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
-- the API: a CHECK cannot compare array elements without a function).
--   signal:      >= 1 gate, every gate and risk check passed, >= 1 trader
--   risk_reject: >= 1 gate, every gate passed, >= 1 failed risk check, >= 1 trader
--   skip:        >= 1 failed gate
-- NOT VALID: rows stored under the looser rules of 060 stay readable; every new
-- or updated row is checked.
ALTER TABLE decision_logs ADD CONSTRAINT decision_logs_type_rules_check CHECK (
    CASE decision_type
        WHEN 'signal' THEN
            jsonb_array_length(gates) >= 1 AND trader_count >= 1
            AND NOT jsonb_path_exists(gates, '$[*] ? (@.passed == false)')
            AND NOT jsonb_path_exists(risk_checks, '$[*] ? (@.passed == false)')
        WHEN 'risk_reject' THEN
            jsonb_array_length(gates) >= 1 AND trader_count >= 1
            AND NOT jsonb_path_exists(gates, '$[*] ? (@.passed == false)')
            AND jsonb_path_exists(risk_checks, '$[*] ? (@.passed == false)')
        ELSE
            jsonb_path_exists(gates, '$[*] ? (@.passed == false)')
    END
) NOT VALID;
