/*
<pgmi-meta id="ac2326cd-d89b-4bd6-80a3-5a98db885371" idempotent="true">
  <description>Row auditing, in two phases: the log and its trigger function before the tables exist, the triggers after.</description>
  <sortKeys>
    <key>15-audit/1-setup</key>
    <key>30-audit/2-attach</key>
  </sortKeys>
</pgmi-meta>
*/
-- One file, two plan positions. deploy.sql sets deploy.sort_key before each step.
DO $$
BEGIN
    IF current_setting('deploy.sort_key') = '15-audit/1-setup' THEN
        CREATE TABLE IF NOT EXISTS shop.audit_log (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            table_name text NOT NULL,
            operation  text NOT NULL,
            logged_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE OR REPLACE FUNCTION shop.audit_row() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            INSERT INTO shop.audit_log (table_name, operation) VALUES (TG_TABLE_NAME, TG_OP);
            RETURN NULL;
        END
        $fn$;
        RAISE NOTICE '  audit: log table and trigger function ready';
    END IF;
END
$$;

DO $$
DECLARE
    t record;
BEGIN
    IF current_setting('deploy.sort_key') = '30-audit/2-attach' THEN
        -- every table of the schema by now, except the log itself
        FOR t IN SELECT c.oid::regclass AS rel, c.oid
                   FROM pg_catalog.pg_class c
                  WHERE c.relnamespace = 'shop'::regnamespace
                    AND c.relkind = 'r' AND c.relname <> 'audit_log'
                  ORDER BY c.relname
        LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                            WHERE g.tgrelid = t.oid AND g.tgname = 'audit_row') THEN
                EXECUTE format('CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON %s
                                FOR EACH ROW EXECUTE FUNCTION shop.audit_row()', t.rel);
                RAISE NOTICE '  audit: trigger attached to %', t.rel;
            END IF;
        END LOOP;
    END IF;
END
$$;
