-- ci-reports: a deploy whose tests end up in CI as JUnit XML and TAP.
-- Nothing here is specific to reports: pgmi-upload reads the test results from the session
-- after the deploy (they survive the rollback of a failed deploy) and writes the files
-- given with --test-report.
BEGIN;

DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT path, content FROM pgmi_plan_view
              WHERE path LIKE './schema/%.sql' ORDER BY execution_order
    LOOP
        EXECUTE f.content;
    END LOOP;
END
$$;

CALL pgmi_test();

COMMIT;
