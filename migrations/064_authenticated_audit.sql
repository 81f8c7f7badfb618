-- The config audit's "who" is the authenticated caller's name (changed_by);
-- what the caller says about themselves (the x-sigma-actor header, e.g. a
-- ticket or a person behind a shared admin token) is kept beside it as a
-- note, never instead of it. Rows written before authentication existed keep
-- the name the caller gave and no note.
ALTER TABLE execution_config_audit ADD COLUMN note TEXT;
ALTER TABLE execution_config_audit
    ADD CONSTRAINT execution_config_audit_note_length CHECK (char_length(note) <= 200);

-- Who asked for each execution: the authenticated name of the caller whose
-- ExecuteSignal claimed it ("anonymous (<address>)" when authentication is
-- off). Set once, at the claim; executions claimed before this migration have
-- none.
ALTER TABLE execution_logs ADD COLUMN requested_by TEXT;
ALTER TABLE execution_logs
    ADD CONSTRAINT execution_logs_requested_by_length CHECK (char_length(requested_by) <= 200);

CREATE FUNCTION execution_logs_requested_by_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.requested_by IS DISTINCT FROM NEW.requested_by THEN
        RAISE EXCEPTION 'execution_logs.requested_by is set once, at the claim';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER execution_logs_requested_by_fixed
    BEFORE UPDATE OF requested_by ON execution_logs
    FOR EACH ROW EXECUTE FUNCTION execution_logs_requested_by_fixed();
