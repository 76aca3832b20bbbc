-- deploy.sql of {{PROJECT_NAME}}: the whole deployment, in SQL.
--
-- pgmi has loaded every project file into session views; this script decides the rest:
--
--   HEAD (one transaction, up to the first COMMIT)
--     1. bounded lock waits, one deploy at a time
--     2. the roles of this database, created or converged
--     3. every SQL file in <pgmi-meta> sort-key order, as the owner role, through a ledger
--     4. the tests (CALL pgmi_test()): a failure rolls back all of the above
--   TAIL (after COMMIT, one statement at a time, no surrounding transaction)
--     5. indexes built with CREATE INDEX CONCURRENTLY
BEGIN;

-- 1. Never queue the application behind a deploy: a lock not granted within 5 s fails the
--    deploy (SQLSTATE 55P03; `pgmi-upload --retries N` repeats the whole head). The advisory
--    lock (per database, released at COMMIT or ROLLBACK) serialises deploys of this
--    database whatever tool runs them, e.g. a psql script from `pgmi-upload bundle`.
SET LOCAL lock_timeout = '5s';
SELECT pg_advisory_xact_lock(hashtext('schema deploy'));

-- 2. Roles. They are cluster-wide, so their names start with the database name: two
--    databases on one server never share them. pg_temp.app_role('owner') gives the name;
--    files and tests call it too.
CREATE OR REPLACE FUNCTION pg_temp.app_role(p_kind text) RETURNS name
LANGUAGE sql STABLE AS $fn$
    SELECT (CASE WHEN octet_length(current_database()) <= 55 THEN current_database()
                 ELSE left(current_database(), 40) || '_' || left(md5(current_database()), 8)
            END || '_' || p_kind)::name
$fn$;

-- owner:  NOLOGIN; owns every schema and object. The deploying role acts as it.
-- writer: may change the data in schema app; includes reader.
-- reader: may read the views of schema api.
-- Applications log in with their own LOGIN roles: GRANT <db>_writer TO my_service;
-- Works for a deploying role with CREATEROLE (no superuser needed) that owns the database.
DO $$
DECLARE
    v_owner  name := pg_temp.app_role('owner');
    v_writer name := pg_temp.app_role('writer');
    v_reader name := pg_temp.app_role('reader');
    v_role   name;
BEGIN
    FOREACH v_role IN ARRAY ARRAY[v_owner, v_writer, v_reader] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            RAISE NOTICE 'created role %', v_role;
        ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                       WHERE r.rolname = v_role AND r.rolcanlogin) THEN
            EXECUTE format('ALTER ROLE %I NOLOGIN', v_role);
            RAISE WARNING 'role % could log in; made it NOLOGIN again', v_role;
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role(v_writer, v_reader, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', v_reader, v_writer);
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, v_owner, 'USAGE') THEN
        EXECUTE format('GRANT %I TO %I', v_owner, current_user);
    END IF;
    EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), v_owner);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I, %I',
                   current_database(), v_writer, v_reader);
END
$$;

-- From here to the tests, everything is created by, and owned by, the owner role.
DO $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', pg_temp.app_role('owner'));
END
$$;

-- 3. The ledger: one row per file, keyed by its <pgmi-meta> id (a file may be moved or
--    renamed and keep its history).
CREATE SCHEMA IF NOT EXISTS internal;
CREATE TABLE IF NOT EXISTS internal.deploy_ledger (
    id         uuid PRIMARY KEY,
    path       text NOT NULL,
    checksum   text NOT NULL,
    idempotent boolean NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Files run through pg_temp.pgmi_execute(path), which every pgmi session has: statement
-- by statement, under this session's search_path and role; an error names the file, line
-- and column (`Failed in ./app/tables/001_customer.sql:12:5: …`, then the line and a
-- caret) and keeps its SQLSTATE, DETAIL and HINT.

-- The plan: pgmi_plan_view has one row per file and sort key, in execution order, so a
-- file with two keys runs in two phases. Rules:
--   * idempotent="true":  runs on every deploy (CREATE OR REPLACE, IF NOT EXISTS, grants);
--   * idempotent="false": runs once; if its file changed since, a WARNING says so and it
--     is not run again (put the change in a new file, with a new id).
-- The ledger is read once, before the loop: a one-time file with two sort keys runs in
-- both phases of its first deploy.
DO $$
DECLARE
    m         record;
    v_applied jsonb;
    v_missing text;
    v_ran     int := 0;
    v_skipped int := 0;
BEGIN
    SELECT string_agg(s.path, ', ' ORDER BY s.path) INTO v_missing
      FROM pg_temp.pgmi_source_view s
     WHERE s.is_sql_file
       AND NOT EXISTS (SELECT 1 FROM pg_temp.pgmi_source_metadata_view md
                        WHERE md.path = s.path);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'SQL files without a <pgmi-meta> block: %', v_missing
            USING HINT = 'pgmi-upload metadata scaffold . --write adds one to each.';
    END IF;

    SELECT COALESCE(jsonb_object_agg(l.id::text, l.checksum), '{}') INTO v_applied
      FROM internal.deploy_ledger l;

    FOR m IN SELECT p.path, p.id, p.idempotent, p.checksum, p.sort_key
               FROM pg_temp.pgmi_plan_view p
               JOIN pg_temp.pgmi_source_view s ON s.path = p.path
              WHERE s.is_sql_file
              ORDER BY p.execution_order
    LOOP
        IF NOT m.idempotent AND v_applied ? m.id::text THEN
            IF v_applied ->> m.id::text <> m.checksum THEN
                RAISE WARNING '% changed after it was applied; it is not run again', m.path
                    USING DETAIL = format('applied checksum %s, checksum now %s',
                                          v_applied ->> m.id::text, m.checksum),
                          HINT = 'Undo the edit, or put the change in a new file with a new id.';
            END IF;
            v_skipped := v_skipped + 1;
            CONTINUE;
        END IF;

        -- A file with several sort keys can ask which phase it runs in.
        PERFORM set_config('deploy.sort_key', m.sort_key, true);
        PERFORM pg_temp.pgmi_execute(m.path);
        v_ran := v_ran + 1;

        INSERT INTO internal.deploy_ledger AS l (id, path, checksum, idempotent)
        VALUES (m.id, m.path, m.checksum, m.idempotent)
        ON CONFLICT (id) DO UPDATE
           SET path = EXCLUDED.path, checksum = EXCLUDED.checksum,
               idempotent = EXCLUDED.idempotent, applied_at = now()
         WHERE (l.path, l.checksum, l.idempotent)
               IS DISTINCT FROM (EXCLUDED.path, EXCLUDED.checksum, EXCLUDED.idempotent);
    END LOOP;
    RAISE NOTICE '% plan step(s) run, % already applied', v_ran, v_skipped;
END
$$;

-- 4. Tests, as the deploying role, inside this transaction, each one rolled back.
RESET ROLE;
CALL pgmi_test();

COMMIT;

-- 5. TAIL. Each statement below runs on its own, in autocommit, after the head committed.
SET lock_timeout = '5s';

-- CREATE INDEX CONCURRENTLY does not block writers, but cannot run in a transaction. If an
-- earlier run failed halfway (lock timeout, cancel), it left an INVALID index that
-- IF NOT EXISTS would keep forever: drop that leftover first. DROP INDEX CONCURRENTLY is
-- not allowed in a DO block, so this is a plain DROP INDEX: a short ACCESS EXCLUSIVE lock,
-- bounded by lock_timeout.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indexrelid = pg_catalog.to_regclass('app.customer_order_placed_at_idx')
                  AND NOT i.indisvalid) THEN
        RAISE WARNING 'dropping the invalid index app.customer_order_placed_at_idx left by an earlier run';
        DROP INDEX IF EXISTS app.customer_order_placed_at_idx;
    END IF;
END
$$;
CREATE INDEX CONCURRENTLY IF NOT EXISTS customer_order_placed_at_idx
    ON app.customer_order (placed_at);
