-- Removes the session objects of a previous pgmi_load() in this session, so that a second
-- load replaces everything. Only run when they exist (no "does not exist, skipping"
-- notices), and without CASCADE: an object the user built on top of a pgmi view makes the
-- reload fail with a clear dependency error instead of being dropped silently.
DROP VIEW IF EXISTS pg_temp.pgmi_plan_view, pg_temp.pgmi_source_metadata_view,
    pg_temp.pgmi_test_directory_view, pg_temp.pgmi_test_source_view,
    pg_temp.pgmi_parameter_view, pg_temp.pgmi_source_view;
DROP FUNCTION IF EXISTS pg_temp.pgmi_test_generate(text, text),
    pg_temp.pgmi_persist_test_plan(text, text), pg_temp.pgmi_test_callback(pg_temp.pgmi_test_event),
    pg_temp.pgmi_run_test_source(text), pg_temp.pgmi_test_plan(text),
    pg_temp.pgmi_has_tests(text, text), pg_temp.pgmi_validate_pattern(text),
    pg_temp.pgmi_register_file(text, text, text, text), pg_temp.pgmi_is_sql_file(text);
DROP TYPE IF EXISTS pg_temp.pgmi_test_event;
DROP TABLE IF EXISTS pg_temp._pgmi_source_metadata, pg_temp._pgmi_test_source;
DROP TABLE IF EXISTS pg_temp._pgmi_source, pg_temp._pgmi_test_directory, pg_temp._pgmi_parameter;
