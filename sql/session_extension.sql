-- The session objects that call the extension: run by pgmi_load() right after session.sql.
-- @extschema@ is replaced by the extension's schema (quoted) when the session is created.
-- sql/session_portable.sql defines the same three routines, with the same signatures, for
-- sessions built without the extension.

-- The plan is computed by the extension (pgmi-core's testplan module): one implementation
-- for pgmi_test(), this function and pgmi_test_generate().
CREATE FUNCTION pg_temp.pgmi_test_plan(p_pattern text DEFAULT NULL)
    RETURNS TABLE (ordinal int, step_type text, script_path text, directory text, depth int)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT p.ordinal, p.step_type, p.script_path, p.directory, p.depth
      FROM @extschema@.pgmi_test_plan(p_pattern) p
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_test_plan(text) IS
    'The ordered test plan: fixture, test and teardown steps of every test directory holding tests that match p_pattern (a POSIX regex on the test path; NULL = all).';

-- The qualified name every session has, so that CALL pg_temp.pgmi_test() works whatever the
-- search_path (PostgreSQL never looks up routines in pg_temp unqualified). No pinned
-- search_path: the callback name resolves as in the caller's session.
CREATE PROCEDURE pg_temp.pgmi_test(p_pattern text DEFAULT NULL, p_callback text DEFAULT NULL)
    LANGUAGE sql
AS $fn$
    CALL @extschema@.pgmi_test(p_pattern, p_callback)
$fn$;
COMMENT ON PROCEDURE pg_temp.pgmi_test(text, text) IS
    'Runs the session''s tests, each in a rolled-back subtransaction; raises the first failure. Works in autocommit, in transactions, in DO blocks and functions.';

CREATE FUNCTION pg_temp.pgmi_test_results()
    RETURNS TABLE (suite int, ordinal int, step_type text, path text, directory text,
                   passed boolean, duration_us bigint, sqlstate text, message text,
                   detail text)
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT r.suite, r.ordinal, r.step_type, r.path, r.directory, r.passed, r.duration_us,
           r.sqlstate, r.message, r.detail
      FROM @extschema@.pgmi_test_results() r
     ORDER BY r.suite, r.ordinal
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_test_results() IS
    'One row per fixture or test that pgmi_test() ran in this session (since the last load), with its server-side duration; a failed step is the last row of its suite.';
