//! Another role's operators must never run inside pgmi's own SQL. PostgreSQL picks an
//! operator whose argument types match exactly over a built-in polymorphic one, whatever
//! the search path order: a `||(text[], text)` in a schema on the search path beats
//! `pg_catalog.||(anycompatiblearray, anycompatible)`. On PostgreSQL 13 and 14 any role may
//! create one in `public`. So every operator in SQL that pgmi runs in the deployer's session
//! without a pinned search path (the test runner of both session kinds, the session set-up
//! and clean-up) is written `OPERATOR(pg_catalog.…)`.
//!
//! The trap here: operators for every array-append and pattern match pgmi's routines use,
//! in a schema first on the database's search path, each raising an error when called.

use pgmi_tests::{both_kinds, deploy_ok_as, Kind, Project};

const TRAP: &str = "
CREATE SCHEMA trap;
CREATE FUNCTION trap.hijack(anyelement, anyelement) RETURNS boolean LANGUAGE plpgsql AS
  $$BEGIN RAISE EXCEPTION 'hijacked: a trap operator ran inside pgmi'; END$$;
CREATE FUNCTION trap.cat_text(text[], text) RETURNS text[] LANGUAGE plpgsql AS
  $$BEGIN RAISE EXCEPTION 'hijacked: trap ||(text[], text)'; END$$;
CREATE FUNCTION trap.cat_int(int[], int) RETURNS int[] LANGUAGE plpgsql AS
  $$BEGIN RAISE EXCEPTION 'hijacked: trap ||(int[], int)'; END$$;
CREATE FUNCTION trap.cat_bigint(bigint[], bigint) RETURNS bigint[] LANGUAGE plpgsql AS
  $$BEGIN RAISE EXCEPTION 'hijacked: trap ||(bigint[], bigint)'; END$$;
CREATE OPERATOR trap.|| (LEFTARG = text[], RIGHTARG = text, FUNCTION = trap.cat_text);
CREATE OPERATOR trap.|| (LEFTARG = int[], RIGHTARG = int, FUNCTION = trap.cat_int);
CREATE OPERATOR trap.|| (LEFTARG = bigint[], RIGHTARG = bigint, FUNCTION = trap.cat_bigint);
GRANT USAGE ON SCHEMA trap TO PUBLIC;
";

fn trap_operators_never_run(kind: Kind) {
    let db = kind.db("hostile_operators");
    let mut client = db.client();
    client.batch_execute(TRAP).expect("create the trap");
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET search_path = trap, public",
            db.name
        ))
        .expect("put the trap on the search path");
    // The trap works: an array append in the database's own SQL runs it.
    let mut fresh = db.client();
    let err = fresh
        .batch_execute("SELECT ARRAY['a'] || 'b'::text")
        .expect_err("the trap operator is chosen over pg_catalog's");
    assert!(
        format!("{err:?}").contains("hijacked"),
        "not the trap: {err:?}"
    );

    let project = Project::with_deploy("BEGIN;\nCALL pgmi_test();\nCOMMIT;\n")
        .file("__test__/_setup.sql", "CREATE TABLE fx (id int);\n")
        .file("__test__/test_a.sql", "SELECT 1;\n")
        .file("__test__/sub/test_b.sql", "INSERT INTO fx VALUES (1);\n")
        .file("__test__/sub/deeper/test_c.sql", "SELECT 3;\n");
    let run = deploy_ok_as(kind, &project, &db.name, &[]);
    assert!(run.stderr.contains("3 passed"), "{}", run.stderr);
    // A second deploy in a fresh session, after one already loaded on another connection.
    deploy_ok_as(kind, &project, &db.name, &[]);

    // pg_temp.pgmi_execute, on its success path and on its error path.
    let files = Project::with_deploy(
        "BEGIN;\nSELECT pg_temp.pgmi_execute('./m.sql');\nSELECT pg_temp.pgmi_execute('./bad.sql');\nCOMMIT;\n",
    )
    .file("m.sql", "CREATE TABLE m (id int);\nINSERT INTO m VALUES (1);\n")
    .file("bad.sql", "SELECT 1;\n  SELEC 2;\n");
    let run = pgmi_tests::deploy_as(kind, &files, &db.name, &[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("hijacked"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Failed in ./bad.sql:2:3: syntax error"),
        "{}",
        run.stderr
    );
}

both_kinds!(trap_operators_never_run);
