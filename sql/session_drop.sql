-- Removes the session objects of a previous load in this session (either session kind), so
-- that a second load replaces everything. Only run when they exist (no "does not exist, skipping"
-- notices), and without CASCADE: an object the user built on top of a pgmi view makes the
-- reload fail with a clear dependency error instead of being dropped silently.
DROP VIEW IF EXISTS pg_temp.pgmi_plan_view, pg_temp.pgmi_source_metadata_view,
    pg_temp.pgmi_test_directory_view, pg_temp.pgmi_test_source_view,
    pg_temp.pgmi_parameter_view, pg_temp.pgmi_source_view;
DROP PROCEDURE IF EXISTS pg_temp.pgmi_test(text, text);
DROP FUNCTION IF EXISTS pg_temp.pgmi_test_results();
-- Each kind's internal helpers (sql/session_portable.sql, sql/session_extension.sql): only
-- where they exist, since a session of the other kind has none, and IF EXISTS would say so
-- in a notice.
DO $pgmi$
DECLARE
    v_routine regprocedure;
BEGIN
    FOREACH v_routine IN ARRAY ARRAY(
        SELECT p FROM pg_catalog.unnest(ARRAY[
            pg_catalog.to_regprocedure('pg_temp._pgmi_test_section(text[], text[], text[], int[], int, text, int)'),
            pg_catalog.to_regprocedure('pg_temp._pgmi_test_script(int, int, text, text, text)'),
            pg_catalog.to_regprocedure('pg_temp._pgmi_test_emit(text, text, text, text, int, int)'),
            pg_catalog.to_regprocedure('pg_temp._pgmi_test_capture(text)'),
            pg_catalog.to_regprocedure('pg_temp._pgmi_test_flush(int, int[], text[], text[], text, bigint[])'),
            pg_catalog.to_regprocedure('pg_temp._pgmi_execute_statements(text, bytea)'),
            pg_catalog.to_regprocedure('pg_temp._pgmi_execute_position(text, text)')]) p
         WHERE p IS NOT NULL)
    LOOP
        EXECUTE 'DROP FUNCTION ' OPERATOR(pg_catalog.||) v_routine::text;
    END LOOP;
    IF pg_catalog.to_regtype('pg_temp._pgmi_test_result') IS NOT NULL THEN
        DROP TYPE pg_temp._pgmi_test_result;
    END IF;
    IF pg_catalog.to_regclass('pg_temp._pgmi_source_statement') IS NOT NULL THEN
        DROP TABLE pg_temp._pgmi_source_statement;
    END IF;
END
$pgmi$;
DROP FUNCTION IF EXISTS pg_temp.pgmi_test_generate(text, text),
    pg_temp.pgmi_persist_test_plan(text, text), pg_temp.pgmi_test_callback(pg_temp.pgmi_test_event),
    pg_temp.pgmi_run_test_source(text), pg_temp.pgmi_execute(text), pg_temp.pgmi_test_plan(text),
    pg_temp.pgmi_has_tests(text, text), pg_temp.pgmi_validate_pattern(text),
    pg_temp.pgmi_register_file(text, text, text, text), pg_temp.pgmi_is_sql_file(text);
DROP TYPE IF EXISTS pg_temp.pgmi_test_event;
DROP TABLE IF EXISTS pg_temp._pgmi_source_metadata, pg_temp._pgmi_test_source;
DROP TABLE IF EXISTS pg_temp._pgmi_source, pg_temp._pgmi_test_directory, pg_temp._pgmi_parameter;
