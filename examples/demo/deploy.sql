-- The demo project's deploy script. pgmi decides nothing: this file reads the session
-- views pgmi filled (pgmi_plan_view, pgmi_source_view, pgmi_parameter_view) and decides
-- what runs, in which order, inside which transaction.
BEGIN;

CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.migration_history (
    path       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Apply every migration not applied before, in plan order. A migration that was edited
-- after it ran is reported (its normalised checksum changed), not re-run.
DO $$
DECLARE
    m       record;
    applied int := 0;
BEGIN
    FOR m IN SELECT p.path, p.content, p.checksum, h.checksum AS applied_checksum
               FROM pgmi_plan_view p
               LEFT JOIN demo.migration_history h ON h.path = p.path
              WHERE p.path LIKE './migrations/%.sql'
              ORDER BY p.execution_order
    LOOP
        IF m.applied_checksum IS NOT NULL THEN
            IF m.applied_checksum <> m.checksum THEN
                RAISE WARNING '% changed since it was applied; not re-running it', m.path;
            END IF;
            CONTINUE;
        END IF;
        RAISE NOTICE 'applying %', m.path;
        EXECUTE m.content;
        INSERT INTO demo.migration_history (path, checksum) VALUES (m.path, m.checksum);
        applied := applied + 1;
    END LOOP;
    RAISE NOTICE '% migration(s) applied', applied;
END
$$;

-- Reference data lives in a JSON file of the project; pgmi loaded it like any other file.
INSERT INTO demo.greeting (language, text)
SELECT g.key, g.value
  FROM pgmi_source_view s, jsonb_each_text(s.content::jsonb) AS g
 WHERE s.path = './data/greetings.json'
    ON CONFLICT (language) DO UPDATE SET text = EXCLUDED.text;

DO $$
BEGIN
    RAISE NOTICE '% greetings loaded; parameter greeting = "%"',
        (SELECT count(*) FROM demo.greeting), current_setting('pgmi.greeting', true);
END
$$;

COMMIT;
