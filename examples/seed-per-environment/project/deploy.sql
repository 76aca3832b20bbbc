-- seed-per-environment: which seed rows a database gets depends on one parameter,
-- `--param env=dev|staging|prod`, and the rows themselves live in data/seed.json, a plain
-- project file that pgmi loaded into the session like any other.
BEGIN;

-- 1. The environment. Required on purpose: a production database must never get the
--    development users because somebody forgot a flag.
DO $$
DECLARE
    v_env text := current_setting('pgmi.env', true);
BEGIN
    IF v_env IS NULL OR v_env = '' THEN
        RAISE EXCEPTION 'no environment given'
            USING HINT = 'Deploy with --param env=dev, env=staging or env=prod.';
    END IF;
    IF NOT (SELECT (s.content::jsonb -> 'users') ? v_env
              FROM pgmi_source_view s WHERE s.path = './data/seed.json') THEN
        RAISE EXCEPTION 'unknown environment "%"', v_env
            USING HINT = 'data/seed.json has users for: '
                || (SELECT string_agg(k, ', ' ORDER BY k)
                      FROM pgmi_source_view s,
                           jsonb_object_keys(s.content::jsonb -> 'users') AS k
                     WHERE s.path = './data/seed.json');
    END IF;
    RAISE NOTICE 'environment: %', v_env;
END
$$;

-- 2. The schema (repeatable).
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

-- 3. The seed, idempotent: insert what is missing, correct what differs, touch nothing
--    that is already right. A second deploy reports 0 changes.
--    The JSON is read straight from the session: no COPY, no client-side tool.
CREATE TEMP TABLE seed ON COMMIT DROP AS
SELECT s.content::jsonb AS doc FROM pgmi_source_view s WHERE s.path = './data/seed.json';

DO $$
DECLARE
    v_env     text := current_setting('pgmi.env');
    v_plans   int;
    v_users   int;
    v_removed int;
BEGIN
    -- Reference data: every environment.
    INSERT INTO app.plan AS p (code, name, monthly_price)
    SELECT x.code, x.name, x.monthly_price
      FROM seed, jsonb_to_recordset(seed.doc -> 'plans')
           AS x(code text, name text, monthly_price numeric)
    ON CONFLICT (code) DO UPDATE
       SET name = EXCLUDED.name, monthly_price = EXCLUDED.monthly_price
     WHERE (p.name, p.monthly_price) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.monthly_price);
    GET DIAGNOSTICS v_plans = ROW_COUNT;

    -- Users: only this environment's list.
    INSERT INTO app.app_user AS u (email, name, plan_code, seeded)
    SELECT x.email, x.name, x.plan, true
      FROM seed, jsonb_to_recordset(seed.doc -> 'users' -> v_env)
           AS x(email text, name text, plan text)
    ON CONFLICT (email) DO UPDATE
       SET name = EXCLUDED.name, plan_code = EXCLUDED.plan_code
     WHERE u.seeded
       AND (u.name, u.plan_code) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.plan_code);
    GET DIAGNOSTICS v_users = ROW_COUNT;

    -- Seeded users that this environment's list no longer has (removed from the JSON).
    -- Rows people created (seeded = false) are never touched.
    DELETE FROM app.app_user u
     WHERE u.seeded
       AND NOT EXISTS (SELECT 1 FROM seed, jsonb_array_elements(seed.doc -> 'users' -> v_env) e
                        WHERE e ->> 'email' = u.email);
    GET DIAGNOSTICS v_removed = ROW_COUNT;

    RAISE NOTICE 'seed for %: % plan row(s) and % user row(s) inserted or updated, % removed',
        v_env, v_plans, v_users, v_removed;
END
$$;

COMMIT;
