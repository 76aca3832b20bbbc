-- The session objects of a session built without the extension (the portable session):
-- run right after session.sql by pgmi-upload (or by a script `pgmi-upload bundle` wrote).
-- They define, in plain SQL and PL/pgSQL, the three routines sql/session_extension.sql
-- defines by calling the extension, with the same signatures and the same contract
-- (the plan, the nine events and their ordinals, which callback side effects persist, the
-- `Failed in <path>: <message>` error with the original SQLSTATE and DETAIL, P0002 on an
-- empty plan; pgmi-ext/src/testrun.rs is the other implementation, and the live tests run
-- against both):
--
--   pg_temp.pgmi_test_plan(p_pattern)       the plan, computed here in SQL
--   pg_temp.pgmi_test(p_pattern, p_callback) runs the tests
--   pg_temp.pgmi_test_results()             per-step results of this session's runs
--
-- and internal helpers (four functions and a row type), named _pgmi_test_* so they sort
-- apart from the contract; plus pgmi_execute's two helpers and the table of where each
-- project file's statements start (_pgmi_execute_statements, _pgmi_execute_position,
-- _pgmi_source_statement; sql/session_extension.sql has the same two functions).
--
-- Isolation is built from PL/pgSQL exception blocks, each a real subtransaction: a test
-- directory's fixtures, tests and child directories run inside one block (opened only when
-- the directory has fixtures or tests of its own, as the extension does), each test inside
-- another; a block ends by raising the sentinel SQLSTATE PGMIR, which its own handler
-- catches, so everything inside is rolled back. A flag set just before that RAISE tells the
-- sentinel apart from a user error that happens to carry the same SQLSTATE.
--
-- Results must survive those rollbacks (and the ROLLBACK of a failed deploy), and nothing
-- transactional does: rows, settings and sequences' DDL all roll back. Prepared statements
-- do not: PREPARE is session state outside the transaction system. Results are therefore
-- prepared statements, _pgmi_result_<suite>_<ordinal>, that return their rows;
-- pgmi_test_results() executes them all. PL/pgSQL variables survive rollbacks too, so each
-- directory's section collects the results of its own steps in arrays and writes them as
-- one prepared statement when it ends, or when an error passes through it; a failing step
-- writes its own at once. One PREPARE per step cost ~35 µs of a ~125 µs test (measured:
-- 1,000 tests, PostgreSQL 15), one per section costs ~2 µs a step.
--
-- Routines that run the user's tests and callbacks do not pin search_path (names in tests
-- resolve as in the caller's session, as with the extension); every name they use
-- themselves is schema-qualified.

-- A new session forgets the results of an earlier one on this connection.
DO $pgmi$
DECLARE
    v_name text;
BEGIN
    FOR v_name IN SELECT s.name FROM pg_catalog.pg_prepared_statements s
                   WHERE s.name OPERATOR(pg_catalog.~~) '\_pgmi\_result\_%' OR s.name OPERATOR(pg_catalog.~~) '\_pgmi\_suite\_%'
    LOOP
        EXECUTE 'DEALLOCATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(v_name);
    END LOOP;
END
$pgmi$;

-- The plan (docs/testing.md, "The plan"): the relevant directories (those holding a selected test, and their
-- ancestors), walked depth-first in byte order. Each step sorts by its directory's route
-- (the array of directory paths from its tree root down) plus one last element: '' for the
-- directory's own fixtures and tests, '~' for its teardown. Children's routes continue with
-- the child's path, which starts with './' and so sorts after '' and before '~'.
CREATE FUNCTION pg_temp.pgmi_test_plan(p_pattern text DEFAULT NULL)
    RETURNS TABLE (ordinal int, step_type text, script_path text, directory text, depth int)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_pattern text := NULLIF(pg_temp.pgmi_validate_pattern(p_pattern), '');
BEGIN
    RETURN QUERY
    WITH RECURSIVE
    selected AS (
        SELECT t.directory
          FROM pg_temp._pgmi_test_source t
         WHERE NOT t.is_fixture
           AND (v_pattern IS NULL OR t.path ~ v_pattern)
    ),
    relevant (path) AS (
        SELECT d.path FROM pg_temp._pgmi_test_directory d
         WHERE d.path IN (SELECT s.directory FROM selected s)
        UNION
        SELECT p.path
          FROM relevant r
          JOIN pg_temp._pgmi_test_directory d ON d.path = r.path
          JOIN pg_temp._pgmi_test_directory p ON p.path = d.parent_path
    ),
    tree (path, depth, route) AS (
        SELECT d.path, d.depth, ARRAY[d.path]
          FROM pg_temp._pgmi_test_directory d
         WHERE d.path IN (SELECT r.path FROM relevant r)
           AND (d.parent_path IS NULL OR d.parent_path NOT IN (SELECT r.path FROM relevant r))
        UNION ALL
        SELECT d.path, d.depth, t.route || d.path
          FROM tree t
          JOIN pg_temp._pgmi_test_directory d ON d.parent_path = t.path
         WHERE d.path IN (SELECT r.path FROM relevant r)
    ),
    steps AS (
        SELECT t.route || ''::text AS route,
               CASE WHEN f.is_fixture THEN 0 ELSE 1 END AS rank,
               f.filename, f.path AS script_path, t.path AS directory, t.depth,
               CASE WHEN f.is_fixture THEN 'fixture' ELSE 'test' END AS step_type
          FROM tree t
          JOIN pg_temp._pgmi_test_source f ON f.directory = t.path
         WHERE f.is_fixture OR v_pattern IS NULL OR f.path ~ v_pattern
        UNION ALL
        SELECT t.route || '~'::text, 2, '', NULL, t.path, t.depth, 'teardown'
          FROM tree t
    )
    SELECT (row_number() OVER (ORDER BY s.route COLLATE "C", s.rank,
                                         s.filename COLLATE "C"))::int AS ordinal,
           s.step_type, s.script_path, s.directory, s.depth
      FROM steps s
     ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_test_plan(text) IS
    'The ordered test plan: fixture, test and teardown steps of every test directory holding tests that match p_pattern (a POSIX regex on the test path; NULL = all).';

-- Calls the callback for one event; NULL stands for the default callback, which is called
-- statically (a cached plan) rather than through EXECUTE.
CREATE FUNCTION pg_temp._pgmi_test_emit(p_callback text, p_event text, p_path text,
                                        p_directory text, p_depth int, p_ordinal int)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    IF p_callback IS NULL THEN
        PERFORM pg_temp.pgmi_test_callback(
            ROW(p_event, p_path, p_directory, p_depth, p_ordinal, NULL)::pg_temp.pgmi_test_event);
    ELSE
        EXECUTE 'SELECT ' OPERATOR(pg_catalog.||) p_callback OPERATOR(pg_catalog.||) '($1)'
            USING ROW(p_event, p_path, p_directory, p_depth, p_ordinal, NULL)::pg_temp.pgmi_test_event;
    END IF;
END
$fn$;

-- Runs one fixture or test script; returns its duration in µs. A failure is written as
-- its result row at once (prepared statement _pgmi_result_<suite>_<ordinal>) and raised
-- again as `Failed in <path>: <message>` with the original SQLSTATE and DETAIL (HINT
-- dropped).
CREATE FUNCTION pg_temp._pgmi_test_script(p_suite int, p_ordinal int, p_step_type text,
                                          p_path text, p_directory text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_content text;
    v_started timestamptz;
    v_state   text;
    v_message text;
    v_detail  text;
BEGIN
    SELECT s.content INTO v_content
      FROM pg_temp._pgmi_test_source s
     WHERE s.path OPERATOR(pg_catalog.=) p_path;
    v_started := pg_catalog.clock_timestamp();
    BEGIN
        EXECUTE v_content;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        v_message := 'Failed in ' OPERATOR(pg_catalog.||) p_path
                     OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) v_message;
        v_detail := NULLIF(v_detail, '');
        EXECUTE pg_catalog.format(
            'PREPARE %I AS SELECT %s::int4, %s::int4, %L::text, %L::text, %L::text, false, '
            '%s::int8, %L::text, %L::text, %L::text',
            '_pgmi_result_' OPERATOR(pg_catalog.||) p_suite OPERATOR(pg_catalog.||) '_'
                OPERATOR(pg_catalog.||) p_ordinal,
            p_suite, p_ordinal, p_step_type, p_path, p_directory,
            pg_catalog.floor(pg_catalog.date_part('epoch',
                pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_started)
                OPERATOR(pg_catalog.*) 1000000)::bigint,
            v_state, v_message, v_detail);
        IF v_detail IS NULL THEN
            -- RAISE refuses a NULL option, so a missing DETAIL needs its own statement
            RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state;
        END IF;
        RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state, DETAIL = v_detail;
    END;
    RETURN pg_catalog.floor(pg_catalog.date_part('epoch',
               pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_started)
               OPERATOR(pg_catalog.*) 1000000)::bigint;
END
$fn$;

-- Writes the passed steps a section collected as one prepared statement.
CREATE FUNCTION pg_temp._pgmi_test_flush(p_suite int, p_ordinals int[], p_types text[],
                                         p_paths text[], p_directory text, p_micros bigint[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF cardinality(p_ordinals) = 0 THEN
        RETURN;
    END IF;
    EXECUTE format(
        'PREPARE %I AS SELECT %s::int4, o, t, p, %L::text, true, d, NULL::text, NULL::text, NULL::text '
        'FROM unnest(%L::int4[], %L::text[], %L::text[], %L::int8[]) AS r(o, t, p, d)',
        '_pgmi_result_' || p_suite || '_' || p_ordinals[1],
        p_suite, p_directory, p_ordinals, p_types, p_paths, p_micros);
END
$fn$;

-- Runs the section of the plan that belongs to one test directory D, starting at p_pos (a
-- fixture or test step of D: a directory with fixtures or tests of its own starts its
-- section with them): D's own steps, the sections of the directories below it, and D's
-- teardown, all inside one subtransaction that the teardown rolls back. Directories that
-- only lead to tests further down have no steps of their own and open nothing: their
-- teardown events happen in the enclosing section. Returns the position after D's teardown.
CREATE FUNCTION pg_temp._pgmi_test_section(p_type text[], p_path text[], p_dir text[],
                                           p_depth int[], p_pos int, p_callback text,
                                           p_suite int)
    RETURNS int
    LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_dir      text := p_dir[p_pos];
    v_pos      int := p_pos;
    v_last     int := pg_catalog.cardinality(p_type);
    v_closing  boolean := false;
    v_testing  boolean := false;
    -- results of this directory's passed steps, written by _pgmi_test_flush
    v_ordinals int[] := '{}';
    v_types    text[] := '{}';
    v_paths    text[] := '{}';
    v_micros   bigint[] := '{}';
BEGIN
    BEGIN
        LOOP
            IF v_pos OPERATOR(pg_catalog.>) v_last THEN
                RAISE EXCEPTION 'pgmi_test: the plan ended inside directory %', v_dir
                    USING ERRCODE = 'XX000';
            ELSIF p_type[v_pos] OPERATOR(pg_catalog.=) 'teardown' AND p_dir[v_pos] OPERATOR(pg_catalog.=) v_dir THEN
                PERFORM pg_temp._pgmi_test_emit(p_callback, 'teardown_start', NULL, v_dir,
                                                p_depth[v_pos], v_pos);
                v_closing := true;
                RAISE SQLSTATE 'PGMIR';
            ELSIF p_type[v_pos] OPERATOR(pg_catalog.=) 'teardown' THEN
                PERFORM pg_temp._pgmi_test_emit(p_callback, 'teardown_start', NULL,
                                                p_dir[v_pos], p_depth[v_pos], v_pos);
                PERFORM pg_temp._pgmi_test_emit(p_callback, 'teardown_end', NULL,
                                                p_dir[v_pos], p_depth[v_pos], v_pos);
                v_pos := v_pos OPERATOR(pg_catalog.+) 1;
            ELSIF p_dir[v_pos] OPERATOR(pg_catalog.<>) v_dir THEN
                v_pos := pg_temp._pgmi_test_section(p_type, p_path, p_dir, p_depth, v_pos,
                                                    p_callback, p_suite);
            ELSIF p_type[v_pos] OPERATOR(pg_catalog.=) 'fixture' THEN
                PERFORM pg_temp._pgmi_test_emit(p_callback, 'fixture_start', p_path[v_pos],
                                                v_dir, p_depth[v_pos], v_pos);
                v_micros := v_micros OPERATOR(pg_catalog.||) pg_temp._pgmi_test_script(p_suite, v_pos, 'fixture',
                                                                  p_path[v_pos], v_dir);
                v_ordinals := v_ordinals OPERATOR(pg_catalog.||) v_pos;
                v_types := v_types OPERATOR(pg_catalog.||) 'fixture'::text;
                v_paths := v_paths OPERATOR(pg_catalog.||) p_path[v_pos];
                PERFORM pg_temp._pgmi_test_emit(p_callback, 'fixture_end', p_path[v_pos],
                                                v_dir, p_depth[v_pos], v_pos);
                v_pos := v_pos OPERATOR(pg_catalog.+) 1;
            ELSE
                BEGIN
                    -- the callback is called directly on this hot path, not through
                    -- _pgmi_test_emit (one function call less per event)
                    IF p_callback IS NULL THEN
                        PERFORM pg_temp.pgmi_test_callback(ROW('test_start', p_path[v_pos],
                            v_dir, p_depth[v_pos], v_pos, NULL)::pg_temp.pgmi_test_event);
                    ELSE
                        EXECUTE 'SELECT ' OPERATOR(pg_catalog.||) p_callback
                                OPERATOR(pg_catalog.||) '($1)'
                            USING ROW('test_start', p_path[v_pos], v_dir, p_depth[v_pos], v_pos,
                                      NULL)::pg_temp.pgmi_test_event;
                    END IF;
                    v_micros := v_micros OPERATOR(pg_catalog.||) pg_temp._pgmi_test_script(p_suite, v_pos, 'test',
                                                                      p_path[v_pos], v_dir);
                    v_ordinals := v_ordinals OPERATOR(pg_catalog.||) v_pos;
                    v_types := v_types OPERATOR(pg_catalog.||) 'test'::text;
                    v_paths := v_paths OPERATOR(pg_catalog.||) p_path[v_pos];
                    IF p_callback IS NULL THEN
                        PERFORM pg_temp.pgmi_test_callback(ROW('test_end', p_path[v_pos],
                            v_dir, p_depth[v_pos], v_pos, NULL)::pg_temp.pgmi_test_event);
                        PERFORM pg_temp.pgmi_test_callback(ROW('rollback', p_path[v_pos],
                            v_dir, p_depth[v_pos], v_pos, NULL)::pg_temp.pgmi_test_event);
                    ELSE
                        EXECUTE 'SELECT ' OPERATOR(pg_catalog.||) p_callback
                                OPERATOR(pg_catalog.||) '($1)'
                            USING ROW('test_end', p_path[v_pos], v_dir, p_depth[v_pos], v_pos,
                                      NULL)::pg_temp.pgmi_test_event;
                        EXECUTE 'SELECT ' OPERATOR(pg_catalog.||) p_callback
                                OPERATOR(pg_catalog.||) '($1)'
                            USING ROW('rollback', p_path[v_pos], v_dir, p_depth[v_pos], v_pos,
                                      NULL)::pg_temp.pgmi_test_event;
                    END IF;
                    v_testing := true;
                    RAISE SQLSTATE 'PGMIR';
                EXCEPTION WHEN SQLSTATE 'PGMIR' THEN
                    IF NOT v_testing THEN
                        RAISE;
                    END IF;
                    v_testing := false;
                END;
                v_pos := v_pos OPERATOR(pg_catalog.+) 1;
            END IF;
        END LOOP;
    EXCEPTION
        WHEN SQLSTATE 'PGMIR' THEN
            IF NOT v_closing THEN
                PERFORM pg_temp._pgmi_test_flush(p_suite, v_ordinals, v_types, v_paths, v_dir,
                                                 v_micros);
                RAISE;
            END IF;
        WHEN OTHERS THEN
            -- keep the passed steps' results before the failure leaves this section
            PERFORM pg_temp._pgmi_test_flush(p_suite, v_ordinals, v_types, v_paths, v_dir,
                                             v_micros);
            RAISE;
    END;
    PERFORM pg_temp._pgmi_test_flush(p_suite, v_ordinals, v_types, v_paths, v_dir, v_micros);
    PERFORM pg_temp._pgmi_test_emit(p_callback, 'teardown_end', NULL, v_dir, p_depth[v_pos],
                                    v_pos);
    RETURN v_pos OPERATOR(pg_catalog.+) 1;
END
$fn$;

-- Where each project file's statements start, for pg_temp.pgmi_execute (sql/session.sql):
-- computed by pgmi-upload with pgmi-core's splitter (pgmi_core::execute) and loaded with the
-- other tables. statements is the text of an int4[] literal with three numbers per
-- statement: the 1-based byte offset in the file's UTF-8 text of its first token, its line
-- and its column (characters); text because COPY takes it at the cost of a copy.
-- statements_off is the split with standard_conforming_strings off when it differs (only a
-- backslash in a '...' string can make it differ), NULL otherwise.
-- The key compares bytes ("C"): 10,000 keys load ~10 ms faster than with the database's
-- collation, and pgmi_execute only looks paths up by equality.
CREATE TEMP TABLE _pgmi_source_statement (
    path           text COLLATE "C" PRIMARY KEY,
    statements     text NOT NULL,
    statements_off text
);
ALTER TABLE _pgmi_source_statement ALTER COLUMN statements SET STATISTICS 0,
                                   ALTER COLUMN statements_off SET STATISTICS 0;
GRANT SELECT ON _pgmi_source_statement TO PUBLIC;

-- The statements of a project file for pgmi_execute: 1-based byte offsets in p_bytes (the
-- file's UTF-8 text) where each starts and where its text stops (the next one's start), and
-- its line and column, split with the session's standard_conforming_strings. A file added
-- after the load (pgmi_register_file) has no stored split and runs as one statement.
CREATE FUNCTION pg_temp._pgmi_execute_statements(p_path text, p_bytes bytea)
    RETURNS TABLE (start int, stop int, line int, col int)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_on boolean := current_setting('standard_conforming_strings')::boolean;
    v    int[];
BEGIN
    SELECT (CASE WHEN v_on OR s.statements_off IS NULL THEN s.statements
                 ELSE s.statements_off END)::int[]
      INTO v
      FROM pg_temp._pgmi_source_statement s
     WHERE s.path = p_path COLLATE "C";
    IF NOT FOUND THEN
        IF octet_length(p_bytes) > 0 THEN
            RETURN QUERY SELECT 1, octet_length(p_bytes) + 1, 1, 1;
        END IF;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT v[3 * i - 2], COALESCE(v[3 * i + 1], octet_length(p_bytes) + 1), v[3 * i - 1], v[3 * i]
      FROM generate_series(1, cardinality(v) / 3) AS i
     ORDER BY i;
END
$fn$;

-- Where in p_sql an error with SQLSTATE p_state is: the portable session cannot know (a
-- PL/pgSQL handler cannot read an error's position), so pgmi_execute points at the start of
-- the statement and says so.
CREATE FUNCTION pg_temp._pgmi_execute_position(p_sql text, p_state text, OUT pos int,
                                             OUT note text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT NULL::int, '(the portable session knows only where the statement starts)'::text
$fn$;

-- One row of pgmi_test_results().
CREATE TYPE pg_temp._pgmi_test_result AS (suite int, ordinal int, step_type text, path text,
                                          directory text, passed boolean, duration_us bigint,
                                          sqlstate text, message text, detail text);

CREATE PROCEDURE pg_temp.pgmi_test(p_pattern text DEFAULT NULL, p_callback text DEFAULT NULL)
    LANGUAGE plpgsql
AS $fn$
DECLARE
    v_name    text := COALESCE(p_callback, 'pg_temp.pgmi_test_callback');
    v_proc    regprocedure;
    v_cb      text;
    v_pattern text := NULLIF(p_pattern, '');
    v_type    text[];
    v_path    text[];
    v_dir     text[];
    v_depth   int[];
    v_last    int;
    v_pos     int := 1;
    v_suite   int;
    v_state   text;
    v_message text;
    v_detail  text;
BEGIN
    -- The callback: the original pgmi's name rule, then resolved as the caller's session would.
    IF v_name OPERATOR(pg_catalog.!~) '^[a-zA-Z_][a-zA-Z0-9_]*([.][a-zA-Z_][a-zA-Z0-9_]*)?$' THEN
        RAISE EXCEPTION 'Invalid callback name: %. Expected [schema.]function identifier.', v_name
            USING ERRCODE = '22023';
    END IF;
    v_proc := pg_catalog.to_regprocedure(v_name OPERATOR(pg_catalog.||) '(pg_temp.pgmi_test_event)');
    IF v_proc IS NULL THEN
        RAISE EXCEPTION 'function %(pg_temp.pgmi_test_event) does not exist', v_name
            USING ERRCODE = '42883',
                  HINT = 'A callback is a function [schema.]name(pg_temp.pgmi_test_event) RETURNS void. Functions in pg_temp must be written pg_temp.name: PostgreSQL never looks up functions there otherwise.';
    END IF;
    IF v_proc OPERATOR(pg_catalog.<>) 'pg_temp.pgmi_test_callback(pg_temp.pgmi_test_event)'::pg_catalog.regprocedure THEN
        SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                   OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname)
          INTO v_cb
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
         WHERE p.oid OPERATOR(pg_catalog.=) v_proc;
    END IF;

    SELECT pg_catalog.array_agg(p.step_type ORDER BY p.ordinal),
           pg_catalog.array_agg(p.script_path ORDER BY p.ordinal),
           pg_catalog.array_agg(p.directory ORDER BY p.ordinal),
           pg_catalog.array_agg(p.depth ORDER BY p.ordinal)
      INTO v_type, v_path, v_dir, v_depth
      FROM pg_temp.pgmi_test_plan(v_pattern) p;
    IF v_type IS NULL OR NOT 'test' OPERATOR(pg_catalog.=) ANY (v_type) THEN
        IF v_pattern IS NOT NULL THEN
            RAISE EXCEPTION 'pgmi: no tests matched the requested pattern'
                USING ERRCODE = 'P0002',
                      HINT = 'pgmi_test(pattern) ran nothing. Check the pattern against pg_temp.pgmi_test_source_view.';
        END IF;
        RAISE EXCEPTION 'pgmi: no tests were discovered'
            USING ERRCODE = 'P0002',
                  HINT = 'pgmi_test() ran nothing. Tests are *.sql files under a __test__/ directory; remove the call if this project has none.';
    END IF;

    -- Suites are numbered per session; the marker survives rollbacks like the results.
    SELECT pg_catalog.count(*)::int OPERATOR(pg_catalog.+) 1 INTO v_suite
      FROM pg_catalog.pg_prepared_statements s
     WHERE s.name OPERATOR(pg_catalog.~~) '\_pgmi\_suite\_%';
    EXECUTE pg_catalog.format('PREPARE %I AS SELECT %s', '_pgmi_suite_' OPERATOR(pg_catalog.||) v_suite, v_suite);

    v_last := pg_catalog.cardinality(v_type);
    BEGIN
        PERFORM pg_temp._pgmi_test_emit(v_cb, 'suite_start', NULL, '', 0, 0);
        WHILE v_pos OPERATOR(pg_catalog.<=) v_last LOOP
            IF v_type[v_pos] OPERATOR(pg_catalog.=) 'teardown' THEN
                -- a tree root with no fixtures or tests of its own
                PERFORM pg_temp._pgmi_test_emit(v_cb, 'teardown_start', NULL, v_dir[v_pos],
                                                v_depth[v_pos], v_pos);
                PERFORM pg_temp._pgmi_test_emit(v_cb, 'teardown_end', NULL, v_dir[v_pos],
                                                v_depth[v_pos], v_pos);
                v_pos := v_pos OPERATOR(pg_catalog.+) 1;
            ELSE
                v_pos := pg_temp._pgmi_test_section(v_type, v_path, v_dir, v_depth, v_pos,
                                                    v_cb, v_suite);
            END IF;
        END LOOP;
        PERFORM pg_temp._pgmi_test_emit(v_cb, 'suite_end', NULL, '', 0, v_last);
    EXCEPTION WHEN OTHERS THEN
        -- A failed fixture or test (its result row says so) is raised again from here, with
        -- the same message, SQLSTATE and DETAIL, so that its CONTEXT is this one line, as
        -- with the extension, instead of one line per helper and nested directory the error
        -- passed through. Any other error (a callback's) keeps its own CONTEXT.
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        IF NOT EXISTS (SELECT FROM pg_temp.pgmi_test_results() r
                        WHERE r.suite OPERATOR(pg_catalog.=) v_suite AND NOT r.passed
                          AND r.sqlstate OPERATOR(pg_catalog.=) v_state
                          AND r.message OPERATOR(pg_catalog.=) v_message) THEN
            RAISE;
        END IF;
        IF v_detail OPERATOR(pg_catalog.=) '' THEN
            -- RAISE refuses a NULL option, so a missing DETAIL needs its own statement
            RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state;
        END IF;
        RAISE EXCEPTION USING MESSAGE = v_message, ERRCODE = v_state, DETAIL = v_detail;
    END;
END
$fn$;
COMMENT ON PROCEDURE pg_temp.pgmi_test(text, text) IS
    'Runs the session''s tests, each in a rolled-back subtransaction; raises the first failure. Works in autocommit, in transactions, in DO blocks and functions.';

CREATE FUNCTION pg_temp.pgmi_test_results()
    RETURNS TABLE (suite int, ordinal int, step_type text, path text, directory text,
                   passed boolean, duration_us bigint, sqlstate text, message text,
                   detail text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name text;
    v_rows pg_temp._pgmi_test_result[] := '{}';
    v_row  pg_temp._pgmi_test_result;
BEGIN
    FOR v_name IN SELECT s.name
                    FROM pg_catalog.pg_prepared_statements s
                   WHERE s.name LIKE '\_pgmi\_result\_%'
    LOOP
        FOR v_row IN EXECUTE 'EXECUTE ' || pg_catalog.quote_ident(v_name) LOOP
            v_rows := v_rows || v_row;
        END LOOP;
    END LOOP;
    RETURN QUERY SELECT r.* FROM pg_catalog.unnest(v_rows) r ORDER BY r.suite, r.ordinal;
END
$fn$;
COMMENT ON FUNCTION pg_temp.pgmi_test_results() IS
    'One row per fixture or test that pgmi_test() ran in this session (since the last load), with its server-side duration; a failed step is the last row of its suite.';
