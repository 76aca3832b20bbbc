-- Tests see the session too: every migration file of the project is in the ledger.
DO $$
DECLARE
    v_missing text;
BEGIN
    SELECT string_agg(s.path, ', ') INTO v_missing
      FROM pg_temp.pgmi_source_view s
     WHERE s.path ~ '^\./migrations/[^/]+\.sql$'
       AND NOT EXISTS (SELECT 1 FROM deploy.applied_migration l WHERE l.path = s.path);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'migrations missing from the ledger: %', v_missing;
    END IF;
END
$$;
