-- execution-order: the order of the files comes from their <pgmi-meta> sort keys, not from
-- their names or directories. pgmi_plan_view already lists one row per (file, sort key) in
-- byte order of the key; this script checks the plan, then walks it.
BEGIN;

-- 1. A gate this project wrote for itself: no two files may share a plan position (a sort
--    key). pgmi would still order them (by path, as a tie-break), but then the order of
--    those two files depends on their names again, which is what sort keys are meant to
--    stop. Checked before anything runs, so a clash changes nothing.
DO $$
DECLARE
    v_clash text;
BEGIN
    SELECT string_agg(format('%s is used by %s', c.sort_key, c.paths), '; ' ORDER BY c.sort_key)
      INTO v_clash
      FROM (SELECT p.sort_key, string_agg(p.path, ' and ' ORDER BY p.path) AS paths
              FROM pgmi_plan_view p
             GROUP BY p.sort_key
            HAVING count(*) > 1) c;
    IF v_clash IS NOT NULL THEN
        RAISE EXCEPTION 'two files share a plan position: %', v_clash
            USING HINT = 'Give each file its own <sortKeys> key (pgmi-upload metadata plan shows them all).';
    END IF;
END
$$;

-- 2. The plan, step by step. A file with two sort keys appears twice; before each step the
--    current key is published as deploy.sort_key, so such a file can tell which phase it is
--    in. Only SQL files run: any other file of the project (JSON, a README) is in the plan
--    too, under its path.
DO $$
DECLARE
    s record;
    v_step int := 0;
BEGIN
    FOR s IN SELECT p.path, p.sort_key, p.content
               FROM pgmi_plan_view p
               JOIN pgmi_source_view f ON f.path = p.path
              WHERE f.is_sql_file
              ORDER BY p.execution_order
    LOOP
        v_step := v_step + 1;
        RAISE NOTICE 'step %: % (sort key %)', v_step, s.path, s.sort_key;
        PERFORM set_config('deploy.sort_key', s.sort_key, true);
        EXECUTE s.content;
    END LOOP;
END
$$;

COMMIT;
