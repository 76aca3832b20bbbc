-- The role hierarchy and the privileges deploy.sql and security/grants.sql converge.
DO $$
DECLARE
    v_owner  name := pg_temp.app_role('owner');
    v_writer name := pg_temp.app_role('writer');
    v_reader name := pg_temp.app_role('reader');
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles r
                WHERE r.rolname IN (v_owner, v_writer, v_reader) AND r.rolcanlogin) THEN
        RAISE EXCEPTION 'the group roles must be NOLOGIN';
    END IF;
    IF NOT pg_has_role(v_writer, v_reader, 'USAGE') THEN
        RAISE EXCEPTION '% should include %', v_writer, v_reader;
    END IF;
    IF pg_has_role(v_reader, v_writer, 'MEMBER') THEN
        RAISE EXCEPTION '% must not include %', v_reader, v_writer;
    END IF;
    IF (SELECT n.nspowner::regrole::name FROM pg_namespace n WHERE n.nspname = 'app') <> v_owner
       OR (SELECT c.relowner::regrole::name FROM pg_class c
            WHERE c.oid = 'app.customer'::regclass) <> v_owner THEN
        RAISE EXCEPTION 'app and its tables must belong to %', v_owner;
    END IF;

    -- reader: the api views, nothing else
    IF NOT has_table_privilege(v_reader, 'api.customer_summary', 'SELECT') THEN
        RAISE EXCEPTION '% cannot read api.customer_summary', v_reader;
    END IF;
    IF has_schema_privilege(v_reader, 'app', 'USAGE')
       OR has_schema_privilege(v_reader, 'internal', 'USAGE') THEN
        RAISE EXCEPTION '% must not reach schemas app or internal', v_reader;
    END IF;

    -- writer: changes data in app, never touches internal
    IF NOT has_table_privilege(v_writer, 'app.customer_order', 'INSERT')
       OR NOT has_sequence_privilege(v_writer, 'app.customer_order_id_seq', 'USAGE') THEN
        RAISE EXCEPTION '% cannot insert orders', v_writer;
    END IF;
    IF has_table_privilege(v_writer, 'app.customer', 'TRUNCATE')
       OR has_schema_privilege(v_writer, 'internal', 'USAGE')
       OR has_schema_privilege('public', 'app', 'USAGE') THEN
        RAISE EXCEPTION 'privileges wider than granted';
    END IF;
END
$$;
