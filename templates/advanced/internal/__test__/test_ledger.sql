-- Every SQL file of the project is in the ledger, under its <pgmi-meta> id, with the
-- checksum of the file that ran.
DO $$
DECLARE
    v_missing text;
BEGIN
    SELECT string_agg(md.path, ', ') INTO v_missing
      FROM pg_temp.pgmi_source_metadata_view md
      JOIN pg_temp.pgmi_source_view s ON s.path = md.path
     WHERE NOT EXISTS (SELECT 1 FROM internal.deploy_ledger l WHERE l.id = md.id);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'not in the ledger: %', v_missing;
    END IF;
    IF EXISTS (SELECT 1 FROM internal.deploy_ledger l
                 JOIN pg_temp.pgmi_plan_view p ON p.id = l.id
                WHERE p.idempotent AND l.checksum <> p.checksum) THEN
        RAISE EXCEPTION 'an idempotent file ran but its ledger checksum is stale';
    END IF;
END
$$;
