-- The session objects that call the extension: run by pgmi_load() right after session.sql.
-- @extschema@ is replaced by the extension's schema (quoted) when the session is created.
-- sql/session_portable.sql defines the same three public routines, with the same
-- signatures, for sessions built without the extension.

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

-- Runs one test or fixture script for the extension's pgmi_test and returns how it failed
-- (all NULL when it passed). Caught here, in PL/pgSQL, because PostgreSQL hands the
-- extension only SQLSTATEs it knows by name: a test that raises its own code ('PG123')
-- would otherwise be reported as XX000. The block is a subtransaction that commits on
-- success, so a fixture's effects stay for the tests below it. No pinned search_path: the
-- script is the user's and resolves names as the caller's session does.
CREATE FUNCTION pg_temp._pgmi_test_capture(p_content text, OUT state text,
                                           OUT message text, OUT detail text)
    LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    EXECUTE p_content;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE,
                            message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL;
END
$fn$;

-- pg_temp.pgmi_execute's two helpers (sql/session_portable.sql has the same two). The
-- statements of a project file: 1-based byte offsets in p_bytes (the file's UTF-8 text)
-- where each starts and stops, and its line and column, split by the extension with
-- pgmi-core's splitter under the session's standard_conforming_strings.
CREATE FUNCTION pg_temp._pgmi_execute_statements(p_path text, p_bytes bytea)
    RETURNS TABLE (start int, stop int, line int, col int)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.start, s.stop, s.line, s.col
      FROM @extschema@.pgmi_statements(p_bytes,
               current_setting('standard_conforming_strings')::boolean) s
$fn$;

-- Where in p_sql an error with SQLSTATE p_state is (1-based, in characters): the extension
-- parses and analyses the statement again and returns the position of the error that
-- raises, if it has the same SQLSTATE; NULL, and a note, when it finds none. No pinned
-- search_path: the statement must resolve its names as it did when it failed.
CREATE FUNCTION pg_temp._pgmi_execute_position(p_sql text, p_state text, OUT pos int,
                                             OUT note text)
    LANGUAGE sql VOLATILE
AS $fn$
    SELECT p, CASE WHEN p IS NULL
                   THEN '(the exact position was not found again: this is where the statement starts)'
              END
      FROM @extschema@.pgmi_error_position(
               pg_catalog.convert_to(p_sql, pg_catalog.getdatabaseencoding()), p_state) p
$fn$;

-- The qualified name every session has, so that CALL pg_temp.pgmi_test() works whatever the
-- search_path (PostgreSQL never looks up routines in pg_temp unqualified). No pinned
-- search_path: the callback name resolves as in the caller's session. A failure whose
-- SQLSTATE the extension could only raise as XX000 is raised again here with the test's
-- own SQLSTATE, which the failed step's result row holds.
CREATE PROCEDURE pg_temp.pgmi_test(p_pattern text DEFAULT NULL, p_callback text DEFAULT NULL)
    LANGUAGE plpgsql
AS $fn$
DECLARE
    v_message text;
    v_detail  text;
    v_real    text;
BEGIN
    CALL @extschema@.pgmi_test(p_pattern, p_callback);
EXCEPTION WHEN SQLSTATE 'XX000' THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    SELECT r.sqlstate INTO v_real
      FROM @extschema@.pgmi_test_results() r
     WHERE NOT r.passed AND r.message OPERATOR(pg_catalog.=) v_message
     ORDER BY r.suite DESC, r.ordinal DESC
     LIMIT 1;
    IF v_real IS NULL OR v_real OPERATOR(pg_catalog.=) 'XX000' THEN
        RAISE;
    END IF;
    -- a test failure carries no HINT; RAISE refuses NULL options, hence two forms
    IF v_detail OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_real;
    END IF;
    RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_real, DETAIL = v_detail;
END
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
