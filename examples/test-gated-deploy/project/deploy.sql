-- test-gated-deploy: the schema changes and the tests share ONE transaction.
-- If any test fails, CALL pgmi_test() raises, COMMIT is never reached, and pgmi-upload
-- rolls back everything this script did: the database stays exactly as it was.
BEGIN;

-- 1. Apply the schema files, in plan order (here: file name order). Each file is written
--    to be safe to run again (IF NOT EXISTS, CREATE OR REPLACE), so there is no ledger.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT path, content
               FROM pgmi_plan_view
              WHERE path LIKE './schema/%.sql'
              ORDER BY execution_order
    LOOP
        EXECUTE f.content;
        RAISE NOTICE 'applied %', f.path;
    END LOOP;
END
$$;

-- 2. The gate. Every file under __test__/ runs here, against the schema just applied but
--    not yet committed. Each test is rolled back after it ran; the first failure raises
--    "Failed in ./__test__/<file>: <message>" and aborts this transaction.
CALL pgmi_test();

-- 3. Only reached when every test passed.
COMMIT;
