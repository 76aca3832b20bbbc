-- Session objects of pgmi session API v1, created in the session's temporary schema, in one
-- transaction (a failed load leaves no half-built session behind), by either session kind:
-- pgmi_load() in the extension (through SPI), or pgmi-upload's portable session (the same
-- text sent by the client, or written into a psql script by `pgmi-upload bundle`).
--
-- Names, column order, types, constraint names and function signatures are the public
-- contract that deploy.sql scripts written for the original pgmi rely on (docs/session-api.md
-- lists them). The tables
-- are filled in bulk by the loader with rows it derived in Rust (pgmi-core), so every CHECK
-- below is a second line of defence, not the main validation.
--
-- Every function is SECURITY INVOKER (the default) and pins search_path; every reference
-- is schema-qualified.

CREATE TEMP TABLE _pgmi_parameter (
    key           text PRIMARY KEY CONSTRAINT chk_key_format CHECK (key ~ '^\w+$'),
    value         text,
    type          text NOT NULL DEFAULT 'text'
                  CONSTRAINT chk_type_valid CHECK (type IN ('text', 'int', 'integer', 'bigint',
                      'numeric', 'boolean', 'bool', 'uuid', 'timestamp', 'timestamptz', 'name')),
    required      boolean NOT NULL DEFAULT false,
    default_value text,
    description   text
);

CREATE TEMP TABLE _pgmi_source (
    path               text PRIMARY KEY,
    name               text NOT NULL,
    directory          text NOT NULL,
    extension          text NOT NULL,
    depth              integer NOT NULL,
    content            text NOT NULL,
    size_bytes         bigint NOT NULL,
    checksum           text NOT NULL,
    pgmi_checksum      text NOT NULL,
    path_parts         text[] NOT NULL,
    is_sql_file        boolean NOT NULL,
    is_test_file       boolean NOT NULL,
    parent_folder_name text
) WITH (toast_tuple_target = 8160);
-- Nobody filters on whole file contents; without statistics ANALYZE skips reading them.
-- The other columns get a small sample (target 3: 900 rows): for 10,000 files ANALYZE took
-- 8 ms at target 10 and 3 ms at 3, at the end of the load where nothing overlaps it, and
-- the estimates of typical filters were no worse (measured: a directory prefix matching
-- 1,000 rows, 968 estimated at 3, 1,652 at 10; one directory of 100, 98 and 100).
-- Rows up to 8 kB stay inline and uncompressed (toast_tuple_target above): compressing
-- every 2 kB migration with pglz cost ~100 ms of a 10,000-file load and made every later
-- read decompress (measured). Larger files are still compressed and moved to TOAST as
-- usual. Storage parameters go in CREATE TABLE: each ALTER TABLE costs its own catalog
-- update and cache rebuild.
ALTER TABLE _pgmi_source ALTER COLUMN content SET STATISTICS 0,
                         ALTER COLUMN path SET STATISTICS 3,
                         ALTER COLUMN directory SET STATISTICS 3,
                         ALTER COLUMN extension SET STATISTICS 3,
                         ALTER COLUMN depth SET STATISTICS 3,
                         ALTER COLUMN is_sql_file SET STATISTICS 3;
COMMENT ON TABLE _pgmi_source IS
    'Project files loaded by pgmi for this session (test files live in _pgmi_test_source). Read it through pgmi_source_view.';

CREATE TEMP TABLE _pgmi_source_metadata (
    path        text PRIMARY KEY,
    id          uuid NOT NULL,
    idempotent  boolean NOT NULL,
    sort_keys   text[] NOT NULL DEFAULT '{}',
    description text
);
COMMENT ON TABLE _pgmi_source_metadata IS
    'Parsed <pgmi-meta> blocks. A file may carry several sort keys and then runs once per key; files without metadata are ordered by their path.';

CREATE TEMP TABLE _pgmi_test_directory (
    path        text PRIMARY KEY
                CONSTRAINT chk_test_dir_path_format CHECK (path LIKE './%' AND path ~ '/__tests?__/')
                CONSTRAINT chk_test_dir_ends_slash CHECK (path LIKE '%/'),
    parent_path text,
    depth       int NOT NULL DEFAULT 0
);
CREATE INDEX ix_pgmi_test_directory_parent ON _pgmi_test_directory (parent_path);
COMMENT ON TABLE _pgmi_test_directory IS
    'Directories under __test__/ or __tests__/ that hold files; parent_path is the nearest such ancestor. Drives pgmi_test_plan().';

CREATE TEMP TABLE _pgmi_test_source (
    path       text PRIMARY KEY CONSTRAINT chk_test_source_path_format CHECK (path LIKE './%'),
    directory  text NOT NULL,
    filename   text NOT NULL,
    content    text NOT NULL,
    is_fixture boolean NOT NULL DEFAULT false
) WITH (toast_tuple_target = 8160);
CREATE INDEX ix_pgmi_test_source_directory ON _pgmi_test_source (directory);
ALTER TABLE _pgmi_test_source ALTER COLUMN content SET STATISTICS 0;
COMMENT ON TABLE _pgmi_test_source IS
    'SQL files from __test__/ directories: tests, and _setup.sql/_setup.psql fixtures.';

GRANT SELECT ON _pgmi_parameter, _pgmi_source, _pgmi_source_metadata,
                _pgmi_test_directory, _pgmi_test_source TO PUBLIC;

CREATE TYPE pg_temp.pgmi_test_event AS (
    event     text,
    path      text,
    directory text,
    depth     integer,
    ordinal   integer,
    context   jsonb
);
COMMENT ON TYPE pg_temp.pgmi_test_event IS
    'Passed to test callbacks. event is one of suite_start, fixture_start, fixture_end, test_start, test_end, rollback, teardown_start, teardown_end, suite_end; path is NULL for suite and teardown events; context is reserved (NULL).';

-- Public views (API v1). Column lists are spelled out: their order is the contract.

CREATE TEMP VIEW pgmi_source_view AS
    SELECT path, name, directory, extension, depth, content, size_bytes, checksum,
           pgmi_checksum, path_parts, is_sql_file, is_test_file, parent_folder_name
      FROM pg_temp._pgmi_source;
COMMENT ON VIEW pgmi_source_view IS 'Project files of this session; use this view rather than _pgmi_source.';

CREATE TEMP VIEW pgmi_parameter_view AS
    SELECT key, value, type, required, default_value, description
      FROM pg_temp._pgmi_parameter;
COMMENT ON VIEW pgmi_parameter_view IS 'Deployment parameters (keys lower-cased); use this view rather than _pgmi_parameter.';

CREATE TEMP VIEW pgmi_test_source_view AS
    SELECT path, directory, filename, content, is_fixture
      FROM pg_temp._pgmi_test_source;
COMMENT ON VIEW pgmi_test_source_view IS 'Test and fixture files; use this view rather than _pgmi_test_source.';

CREATE TEMP VIEW pgmi_test_directory_view AS
    SELECT path, parent_path, depth
      FROM pg_temp._pgmi_test_directory;
COMMENT ON VIEW pgmi_test_directory_view IS 'Test directory tree; use this view rather than _pgmi_test_directory.';

CREATE TEMP VIEW pgmi_source_metadata_view AS
    SELECT path, id, idempotent, sort_keys, description
      FROM pg_temp._pgmi_source_metadata;
COMMENT ON VIEW pgmi_source_metadata_view IS 'Parsed <pgmi-meta> blocks; use this view rather than _pgmi_source_metadata.';

-- One row per (file, sort key). Files without metadata, or with no sort keys, run once
-- under their path. Byte (C) order, so the plan is the same on every database collation.
CREATE OR REPLACE TEMP VIEW pgmi_plan_view AS
    SELECT e.path, e.content, e.checksum, e.generic_id, e.id, e.idempotent, e.description,
           e.sort_key,
           pg_catalog.row_number() OVER (ORDER BY e.sort_key COLLATE "C", e.path COLLATE "C")
               AS execution_order
      FROM (SELECT s.path, s.content, s.pgmi_checksum AS checksum,
                   -- md5 of the UTF-8 path bytes, whatever the database encoding
                   pg_catalog.md5(pg_catalog.convert_to(s.path, 'UTF8'))::uuid AS generic_id,
                   m.id,
                   COALESCE(m.idempotent, true) AS idempotent,
                   COALESCE(m.description, '') AS description,
                   k.sort_key
              FROM pg_temp._pgmi_source s
              LEFT JOIN pg_temp._pgmi_source_metadata m ON m.path = s.path
             CROSS JOIN LATERAL pg_catalog.unnest(
                   CASE WHEN pg_catalog.cardinality(m.sort_keys) > 0 THEN m.sort_keys
                        ELSE ARRAY[s.path] END) AS k(sort_key)) e;
COMMENT ON VIEW pgmi_plan_view IS
    'Execution plan: every project file once per sort key (its path when it has none), ordered by execution_order = byte order of (sort_key, path).';

GRANT SELECT ON pgmi_source_view, pgmi_parameter_view, pgmi_test_source_view,
                pgmi_test_directory_view, pgmi_source_metadata_view, pgmi_plan_view TO PUBLIC;

-- Helper functions the original pgmi's scripts call as pg_temp.<name>(...).

CREATE FUNCTION pg_temp.pgmi_is_sql_file(filename text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    -- a quoted body, not RETURN <expr>: that form needs PostgreSQL 14
    AS $fn$ SELECT filename ~* '\.(sql|ddl|dml|dql|dcl|psql|pgsql|plpgsql)$' $fn$;

CREATE FUNCTION pg_temp.pgmi_register_file(in_path text, in_content text, in_checksum text,
                                           in_pgmi_checksum text)
    RETURNS pg_temp._pgmi_source
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_path  text := btrim(in_path, ' ');
    v_parts text[];
    v_name  text;
    v_depth integer;
    v_row   pg_temp._pgmi_source;
BEGIN
    v_path := replace(v_path, E'\\', '/');
    IF v_path NOT LIKE './%' THEN
        v_path := './' || regexp_replace(v_path, '^(\./|/)+', '');
    END IF;
    v_path := regexp_replace(v_path, '/{2,}', '/', 'g');
    v_parts := string_to_array(v_path, '/');
    v_name := v_parts[cardinality(v_parts)];
    v_depth := cardinality(v_parts) - 2;
    INSERT INTO pg_temp._pgmi_source
        (path, name, directory, extension, depth, content, size_bytes, checksum, pgmi_checksum,
         path_parts, is_sql_file, is_test_file, parent_folder_name)
    VALUES (v_path, v_name, left(v_path, length(v_path) - length(v_name)),
            COALESCE(substring(v_name FROM '(\.[A-Za-z0-9]+)$'), ''), v_depth, in_content,
            octet_length(in_content), in_checksum, in_pgmi_checksum, v_parts,
            pg_temp.pgmi_is_sql_file(v_path), v_path ~ '(^|/)__tests?__/',
            CASE WHEN v_depth > 0 THEN v_parts[v_depth + 1] END)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$fn$;

CREATE FUNCTION pg_temp.pgmi_validate_pattern(p_pattern text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_pattern IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM '' ~ p_pattern;
    RETURN p_pattern;
EXCEPTION WHEN invalid_regular_expression THEN
    RAISE EXCEPTION 'Invalid regex pattern: %', p_pattern
        USING ERRCODE = 'P0001',
              HINT = 'Pattern must be a valid PostgreSQL POSIX regular expression';
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_validate_pattern(text) IS
    'Returns the pattern when it is a valid POSIX regular expression (NULL stays NULL); raises P0001 otherwise.';

CREATE FUNCTION pg_temp.pgmi_has_tests(p_directory text, p_pattern text DEFAULT NULL)
    RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE subtree(path) AS (
        SELECT p_directory
        UNION
        SELECT d.path FROM pg_temp._pgmi_test_directory d JOIN subtree t ON d.parent_path = t.path
    )
    SELECT EXISTS (
        SELECT 1
          FROM pg_temp._pgmi_test_source s
          JOIN subtree t ON s.directory = t.path
         WHERE NOT s.is_fixture
           AND (p_pattern IS NULL OR s.path ~ p_pattern))
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_has_tests(text, text) IS
    'True when the directory or a directory below it holds a test (not a fixture) whose path matches the pattern.';

-- pg_temp.pgmi_test_plan(), pg_temp.pgmi_test() and pg_temp.pgmi_test_results() differ by
-- session kind: sql/session_extension.sql (they call the extension) or
-- sql/session_portable.sql (plain SQL and PL/pgSQL). Both files run right after this one.

-- No pinned search_path here on purpose: test code is the user's and resolves names in
-- the caller's session, as it would in deploy.sql.
CREATE FUNCTION pg_temp.pgmi_run_test_source(p_path text) RETURNS void
    LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_content text;
    v_state   text;
    v_message text;
    v_detail  text;
BEGIN
    SELECT s.content INTO v_content FROM pg_temp._pgmi_test_source s
     WHERE s.path OPERATOR(pg_catalog.=) p_path;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Failed in %: no such test file in this session', p_path
            USING ERRCODE = 'P0002';
    END IF;
    BEGIN
        EXECUTE v_content;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RAISE EXCEPTION 'Failed in %: %', p_path, v_message
            USING ERRCODE = v_state, DETAIL = v_detail;
    END;
END
$fn$;

-- Runs one project file statement by statement, so that a failure names the file's line
-- and column: `Failed in <path>:<line>:<column>: <message>`, then the source line and a
-- caret, with the original SQLSTATE, DETAIL and HINT. The statements (where each starts, in
-- bytes of the UTF-8 text, and on which line and column) come from the session kind's
-- pg_temp._pgmi_execute_statements (the extension computes them, the portable session
-- stored them at load time; both with pgmi-core's splitter), the exact position of an
-- error PostgreSQL positions from pg_temp._pgmi_execute_position (the extension parses the
-- statement again; the portable session cannot, and says so). Whether PostgreSQL
-- positioned the error in the statement shows in its context: SPI adds `SQL statement
-- "<text>"` only for an error it has no position in that text for. The whole file runs in
-- one exception block (a subtransaction), rolled back before the position is looked for:
-- an error that depends on what an earlier statement of the same file created is not found
-- again, and points at its statement's start. No pinned search_path: the file is the
-- user's code and resolves names as the caller's session does; every name and operator
-- used here is qualified.
CREATE FUNCTION pg_temp.pgmi_execute(p_path text) RETURNS void
    LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_content  text;
    v_bytes    bytea;
    v_stmt     record;
    v_sql      text;
    v_state    text;
    v_message  text;
    v_detail   text;
    v_hint     text;
    v_context  text;
    v_position int;
    v_note     text;
    v_before   text;
    v_newlines int;
    v_line     int;
    v_column   int;
    v_source   text;
BEGIN
    SELECT s.content INTO v_content FROM pg_temp._pgmi_source s
     WHERE s.path OPERATOR(pg_catalog.=) p_path;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Failed in %: no such file in this session', p_path
            USING ERRCODE = 'P0002',
                  HINT = 'pg_temp.pgmi_execute runs the files of pgmi_source_view (not tests); paths look like ./migrations/001.sql.';
    END IF;
    v_bytes := pg_catalog.convert_to(v_content, 'UTF8');
    -- One subtransaction for the whole file, not one per statement (a file of many
    -- statements would overflow the backend's subtransaction cache, which slows every
    -- other session's snapshots): the variables below still say which statement failed,
    -- since PL/pgSQL variables are not rolled back.
    v_sql := NULL;
    BEGIN
        FOR v_stmt IN SELECT st.start, st.stop, st.line, st.col
                        FROM pg_temp._pgmi_execute_statements(p_path, v_bytes) st LOOP
            v_sql := pg_catalog.convert_from(
                pg_catalog.substr(v_bytes, v_stmt.start, v_stmt.stop OPERATOR(pg_catalog.-) v_stmt.start),
                'UTF8');
            v_line := v_stmt.line;
            v_column := v_stmt.col;
            EXECUTE v_sql;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
            IF v_sql IS NULL THEN
                RAISE;  -- finding the statements failed, not a statement of the file
            END IF;
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                    v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL,
                                    v_hint = PG_EXCEPTION_HINT,
                                    v_context = PG_EXCEPTION_CONTEXT;
            v_note := NULL;
            -- SPI names the statement in the context only when the error has no position
            -- in it (a runtime error, or one positioned in other text, e.g. a DO body).
            IF pg_catalog.strpos(v_context, pg_catalog.concat('SQL statement "', v_sql, '"'))
                   OPERATOR(pg_catalog.=) 0 THEN
                SELECT e.pos, e.note INTO v_position, v_note
                  FROM pg_temp._pgmi_execute_position(v_sql, v_state) e;
                IF v_position IS NOT NULL THEN
                    v_before := pg_catalog.substr(v_sql, 1, v_position OPERATOR(pg_catalog.-) 1);
                    v_newlines := pg_catalog.length(v_before) OPERATOR(pg_catalog.-)
                        pg_catalog.length(pg_catalog.replace(v_before, E'\n', ''));
                    IF v_newlines OPERATOR(pg_catalog.=) 0 THEN
                        v_column := v_column OPERATOR(pg_catalog.+) v_position OPERATOR(pg_catalog.-) 1;
                    ELSE
                        v_line := v_line OPERATOR(pg_catalog.+) v_newlines;
                        v_column := pg_catalog.strpos(pg_catalog.reverse(v_before), E'\n');
                    END IF;
                END IF;
            END IF;
            v_source := pg_catalog.rtrim(pg_catalog.split_part(v_content, E'\n', v_line), E'\r');
            v_message := pg_catalog.format(E'Failed in %s:%s:%s: %s\n  %s | %s\n  %s | %s^%s',
                p_path, v_line, v_column, v_message, v_line, v_source,
                pg_catalog.repeat(' ', pg_catalog.length(v_line::text)),
                -- the caret lines up under tabs too
                pg_catalog.regexp_replace(
                    pg_catalog.substr(v_source, 1, v_column OPERATOR(pg_catalog.-) 1),
                    '[^\t]', ' ', 'g'),
                pg_catalog.concat(' ' OPERATOR(pg_catalog.||) v_note));
            -- RAISE refuses a NULL option and would show an empty one, hence four forms
            IF v_detail OPERATOR(pg_catalog.<>) '' AND v_hint OPERATOR(pg_catalog.<>) '' THEN
                RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state, DETAIL = v_detail,
                                      HINT = v_hint;
            ELSIF v_detail OPERATOR(pg_catalog.<>) '' THEN
                RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state, DETAIL = v_detail;
            ELSIF v_hint OPERATOR(pg_catalog.<>) '' THEN
                RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state, HINT = v_hint;
            END IF;
            RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state;
    END;
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_execute(text) IS
    'Runs a project file (a path of pgmi_source_view) statement by statement, under the caller''s search_path; a failure raises "Failed in <path>:<line>:<column>: <message>" plus the source line and a caret, with the original SQLSTATE, DETAIL and HINT. P0002 for an unknown path.';

-- Called for every event of every test, so it does not pin search_path with a SET clause:
-- that costs ~4 µs a call (measured: 10,000 calls, 82 ms with it, 40 ms without), about
-- 17 µs a test. It needs no search path: it names no relation or function, and its only
-- operator is qualified.
CREATE FUNCTION pg_temp.pgmi_test_callback(e pg_temp.pgmi_test_event) RETURNS void
    LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    CASE
        WHEN e.event OPERATOR(pg_catalog.=) 'suite_start' THEN
            RAISE NOTICE '[pgmi] Test suite started';
        WHEN e.event OPERATOR(pg_catalog.=) 'suite_end' THEN
            RAISE NOTICE '[pgmi] Test suite completed (% steps)', e.ordinal;
        WHEN e.event OPERATOR(pg_catalog.=) 'fixture_start' THEN
            RAISE NOTICE '[pgmi] Fixture: %', e.path;
        WHEN e.event OPERATOR(pg_catalog.=) 'test_start' THEN
            RAISE NOTICE '[pgmi] Test: %', e.path;
        WHEN e.event OPERATOR(pg_catalog.=) 'rollback' THEN
            RAISE DEBUG '[pgmi] Rollback: %', COALESCE(e.path, e.directory);
        WHEN e.event OPERATOR(pg_catalog.=) 'teardown_start' THEN
            RAISE DEBUG '[pgmi] Teardown: %', e.directory;
        ELSE NULL;
    END CASE;
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_test_callback(pg_temp.pgmi_test_event) IS
    'Default test callback: NOTICE lines for suite, fixture and test starts, DEBUG lines for rollbacks and teardowns. A custom callback is any [schema.]function(pg_temp.pgmi_test_event) returning void.';

CREATE FUNCTION pg_temp.pgmi_persist_test_plan(target_schema text, p_pattern text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.pgmi_test_plan (
                        ordinal int PRIMARY KEY, step_type text NOT NULL, script_path text,
                        directory text NOT NULL, depth int NOT NULL)', target_schema);
    EXECUTE format('TRUNCATE %I.pgmi_test_plan', target_schema);
    EXECUTE format('INSERT INTO %I.pgmi_test_plan (ordinal, step_type, script_path, directory, depth)
                    SELECT ordinal, step_type, script_path, directory, depth
                      FROM pg_temp.pgmi_test_plan($1)', target_schema)
        USING p_pattern;
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_persist_test_plan(text, text) IS
    'Writes the current test plan into the permanent table <target_schema>.pgmi_test_plan (created if missing, replaced otherwise).';

-- The original pgmi's SAVEPOINT-based expansion of CALL pgmi_test(), kept for old scripts and
-- tools that call it. Savepoints: __pgmi_d<k>__ per fixture (or per directory whose first
-- test needs one), one __pgmi_t<k>__ per directory shared by its tests; k counts every
-- savepoint created.
CREATE FUNCTION pg_temp.pgmi_test_generate(p_pattern text DEFAULT NULL,
                                           p_callback text DEFAULT 'pg_temp.pgmi_test_callback')
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_cb     text := COALESCE(p_callback, 'pg_temp.pgmi_test_callback');
    v_lines  text[] := ARRAY[]::text[];
    v_k      int := 0;
    v_dir_sp jsonb := '{}';
    v_test_sp jsonb := '{}';
    v_last   int := 0;
    r        record;
BEGIN
    IF v_cb !~ '^[a-zA-Z_][a-zA-Z0-9_]*([.][a-zA-Z_][a-zA-Z0-9_]*)?$' THEN
        RAISE EXCEPTION 'Invalid callback name: %. Expected [schema.]function identifier.', v_cb
            USING ERRCODE = '22023';
    END IF;
    PERFORM pg_temp.pgmi_validate_pattern(p_pattern);

    IF NOT EXISTS (SELECT 1 FROM pg_temp.pgmi_test_plan(p_pattern) p WHERE p.step_type = 'test') THEN
        IF p_pattern IS NULL OR p_pattern = '' THEN
            RETURN 'DO $__pgmi_no_tests__$ BEGIN RAISE EXCEPTION ''pgmi: no tests were discovered'' USING ERRCODE = ''P0002'', HINT = ''pgmi_test() ran nothing. Tests are *.sql files under a __test__/ directory; remove the call if this project has none.''; END $__pgmi_no_tests__$;';
        END IF;
        RETURN 'DO $__pgmi_no_tests__$ BEGIN RAISE EXCEPTION ''pgmi: no tests matched the requested pattern'' USING ERRCODE = ''P0002'', HINT = ''pgmi_test(pattern) ran nothing. Check the pattern against pg_temp.pgmi_test_source_view.''; END $__pgmi_no_tests__$;';
    END IF;

    v_lines := v_lines || format('SELECT %s(ROW(''suite_start'', NULL, '''', 0, 0, NULL)::pg_temp.pgmi_test_event);', v_cb);
    FOR r IN SELECT * FROM pg_temp.pgmi_test_plan(p_pattern) ORDER BY ordinal LOOP
        v_last := r.ordinal;
        IF r.step_type = 'fixture' THEN
            v_k := v_k + 1;
            IF NOT v_dir_sp ? r.directory THEN
                v_dir_sp := v_dir_sp || jsonb_build_object(r.directory, v_k);
            END IF;
            v_lines := v_lines
                || format('SAVEPOINT __pgmi_d%s__;', v_k)
                || format('SELECT %s(ROW(''fixture_start'', %L, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.script_path, r.directory, r.depth, r.ordinal)
                || format('SELECT pg_temp.pgmi_run_test_source(%L);', r.script_path)
                || format('SELECT %s(ROW(''fixture_end'', %L, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.script_path, r.directory, r.depth, r.ordinal);
        ELSIF r.step_type = 'test' THEN
            IF NOT v_dir_sp ? r.directory THEN
                v_k := v_k + 1;
                v_dir_sp := v_dir_sp || jsonb_build_object(r.directory, v_k);
                v_lines := v_lines || format('SAVEPOINT __pgmi_d%s__;', v_k);
            END IF;
            IF NOT v_test_sp ? r.directory THEN
                v_k := v_k + 1;
                v_test_sp := v_test_sp || jsonb_build_object(r.directory, v_k);
                v_lines := v_lines || format('SAVEPOINT __pgmi_t%s__;', v_k);
            END IF;
            v_lines := v_lines
                || format('SELECT %s(ROW(''test_start'', %L, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.script_path, r.directory, r.depth, r.ordinal)
                || format('SELECT pg_temp.pgmi_run_test_source(%L);', r.script_path)
                || format('SELECT %s(ROW(''test_end'', %L, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.script_path, r.directory, r.depth, r.ordinal)
                || format('SELECT %s(ROW(''rollback'', %L, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.script_path, r.directory, r.depth, r.ordinal)
                || format('ROLLBACK TO SAVEPOINT __pgmi_t%s__;', v_test_sp ->> r.directory);
        ELSE
            v_lines := v_lines
                || format('SELECT %s(ROW(''teardown_start'', NULL, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.directory, r.depth, r.ordinal);
            IF v_dir_sp ? r.directory THEN
                v_lines := v_lines
                    || format('ROLLBACK TO SAVEPOINT __pgmi_d%s__;', v_dir_sp ->> r.directory)
                    || format('RELEASE SAVEPOINT __pgmi_d%s__;', v_dir_sp ->> r.directory);
            END IF;
            v_lines := v_lines
                || format('SELECT %s(ROW(''teardown_end'', NULL, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, r.directory, r.depth, r.ordinal);
        END IF;
    END LOOP;
    v_lines := v_lines || format('SELECT %s(ROW(''suite_end'', NULL, '''', 0, %s, NULL)::pg_temp.pgmi_test_event);', v_cb, v_last);
    RETURN array_to_string(v_lines, E'\n');
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_test_generate(text, text) IS
    'Returns the SAVEPOINT-based SQL the original pgmi substituted for CALL pgmi_test(); kept for compatibility. Prefer CALL pgmi_test(), a real procedure.';
