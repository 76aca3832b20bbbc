-- deploy.sql: the whole deployment of {{PROJECT_NAME}}, in plain SQL.
--
-- pgmi has already loaded every file of this project into session views (pgmi_source_view,
-- pgmi_plan_view, pgmi_parameter_view); this script reads them and decides what runs.
-- Everything up to the COMMIT at the end is ONE transaction: if anything fails, including a
-- test, nothing is left behind.
BEGIN;

-- 1. Parameters. `env` comes from pgmi.yaml or `--param env=...`; default: development.
DO $$
DECLARE
    v_env text := COALESCE(NULLIF(current_setting('pgmi.env', true), ''), 'development');
BEGIN
    IF v_env NOT IN ('development', 'test', 'staging', 'production') THEN
        RAISE EXCEPTION 'unknown env "%"', v_env
            USING HINT = 'Use --param env=development|test|staging|production.';
    END IF;
    -- Store the resolved value for the rest of this transaction.
    PERFORM set_config('pgmi.env', v_env, true);
END
$$;

-- 2. Any project file can be read, not only SQL: project.json names what we deploy.
DO $$
DECLARE
    v_project jsonb;
BEGIN
    SELECT s.content::jsonb INTO v_project
      FROM pg_temp.pgmi_source_view s
     WHERE s.path = './project.json';
    RAISE NOTICE 'Deploying % % (env: %)',
        COALESCE(v_project ->> 'name', '?'), COALESCE(v_project ->> 'version', '?'),
        current_setting('pgmi.env');
END
$$;

-- 3. Files run through pg_temp.pgmi_execute(path), which every pgmi session has: it runs
--    the file statement by statement and names the file, line and column of an error
--    (`Failed in ./migrations/002_x.sql:3:1: …`, then the line and a caret), keeping the
--    original SQLSTATE, DETAIL and HINT.

-- 4. The ledger: which migration ran, with the checksum of the file that ran.
CREATE SCHEMA IF NOT EXISTS deploy;
CREATE TABLE IF NOT EXISTS deploy.applied_migration (
    path       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- 5. Migrations: every ./migrations/*.sql not applied before, in plan order (file name
--    order, unless a file sets <pgmi-meta> sort keys). An applied migration is history: if
--    its file changed since (comments and white space do not count), the deploy stops.
DO $$
DECLARE
    m         record;
    v_applied int := 0;
BEGIN
    FOR m IN SELECT p.path, p.checksum, l.checksum AS applied_checksum
               FROM pg_temp.pgmi_plan_view p
               LEFT JOIN deploy.applied_migration l ON l.path = p.path
              WHERE p.path ~ '^\./migrations/[^/]+\.sql$'
              ORDER BY p.execution_order
    LOOP
        IF m.applied_checksum IS NULL THEN
            PERFORM pg_temp.pgmi_execute(m.path);
            INSERT INTO deploy.applied_migration (path, checksum) VALUES (m.path, m.checksum);
            RAISE NOTICE 'applied %', m.path;
            v_applied := v_applied + 1;
        ELSIF m.applied_checksum <> m.checksum THEN
            RAISE EXCEPTION 'Failed in %: this migration was changed after it was applied', m.path
                USING DETAIL = format('applied checksum %s, checksum now %s',
                                      m.applied_checksum, m.checksum),
                      HINT = 'Undo the edit and put the change in a new migration file.';
        END IF;
    END LOOP;
    RAISE NOTICE '% new migration(s) applied', v_applied;
END
$$;

-- 6. Demo data, everywhere but production. Seeds run on every deploy, so each seed file
--    must be safe to repeat (insert what is missing, change nothing else).
DO $$
DECLARE
    s record;
BEGIN
    IF current_setting('pgmi.env') = 'production' THEN
        RAISE NOTICE 'env is production: demo data skipped';
        RETURN;
    END IF;
    FOR s IN SELECT p.path
               FROM pg_temp.pgmi_plan_view p
              WHERE p.path ~ '^\./seeds/[^/]+\.sql$'
              ORDER BY p.execution_order
    LOOP
        PERFORM pg_temp.pgmi_execute(s.path);
    END LOOP;
END
$$;

-- 7. The tests in __test__/ run here, inside the transaction, each one rolled back.
--    A failing test raises, so the COMMIT below is never reached.
CALL pgmi_test();

COMMIT;
