//! `pg_temp.pgmi_execute(path)`: runs a project file statement by statement and names the
//! file's line and column of a failure, in both session kinds (README, "Running a file:
//! pg_temp.pgmi_execute"). The extension finds the exact position of an error PostgreSQL
//! positions; the portable session knows where the failing statement starts, and says so.

use std::process::Command;

use pgmi_tests::{both_kinds, deploy_as, pgmi_upload, Client, Kind, Project, TestDb};

const PORTABLE_NOTE: &str = " (the portable session knows only where the statement starts)";

/// A session of `kind` holding `files`, on a fresh database.
fn session(kind: Kind, label: &str, files: &[(&str, &str)]) -> (TestDb, Client) {
    let db = kind.db(label);
    let mut client = db.client();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
    kind.load(&mut client, &files);
    (db, client)
}

struct Failure {
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

fn execute(client: &mut Client, path: &str) -> Result<(), Failure> {
    client
        .execute("SELECT pg_temp.pgmi_execute($1)", &[&path])
        .map(|_| ())
        .map_err(|e| {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a server error: {e}"));
            Failure {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
            }
        })
}

/// The expected message: header, source line, caret (and the portable note when the error
/// was one PostgreSQL positions).
fn shape(
    path: &str,
    line: usize,
    column: usize,
    message: &str,
    source: &str,
    note: bool,
) -> String {
    let gutter = " ".repeat(line.to_string().len());
    format!(
        "Failed in {path}:{line}:{column}: {message}\n  {line} | {source}\n  {gutter} | {}^{}",
        " ".repeat(column - 1),
        if note { PORTABLE_NOTE } else { "" }
    )
}

fn syntax_error_at_the_start_of_a_line(kind: Kind) {
    let (_db, mut client) = session(
        kind,
        "exec_syntax",
        &[(
            "migrations/002_bad.sql",
            "-- a bad migration\nCREATE TABLE t1 (id int);\nSELEC 1;\nCREATE TABLE t2 (id int);\n",
        )],
    );
    let err = execute(&mut client, "./migrations/002_bad.sql").expect_err("must fail");
    assert_eq!(err.code, "42601");
    assert_eq!(
        err.message,
        shape(
            "./migrations/002_bad.sql",
            3,
            1,
            "syntax error at or near \"SELEC\"",
            "SELEC 1;",
            kind == Kind::Portable
        )
    );
    assert_eq!(err.detail, None);
    assert_eq!(err.hint, None);
}

fn syntax_error_in_the_middle_of_a_line(kind: Kind) {
    let (_db, mut client) = session(
        kind,
        "exec_syntax_mid",
        &[(
            "b.sql",
            "CREATE TABLE t2 (id int);\nINSERT INTO t2 VALUES (1);\nSELECT 1; SELECT id FROM t2 ORDER BYE id;\n",
        )],
    );
    let err = execute(&mut client, "./b.sql").expect_err("must fail");
    assert_eq!(err.code, "42601");
    let source = "SELECT 1; SELECT id FROM t2 ORDER BYE id;";
    let expected = match kind {
        // the exact position of BYE
        Kind::Extension => shape(
            "./b.sql",
            3,
            35,
            "syntax error at or near \"BYE\"",
            source,
            false,
        ),
        // where the failing (second) statement of the line starts
        Kind::Portable => shape(
            "./b.sql",
            3,
            11,
            "syntax error at or near \"BYE\"",
            source,
            true,
        ),
    };
    assert_eq!(err.message, expected);
}

fn analysis_errors_are_positioned_against_what_existed_before_the_file(kind: Kind) {
    // The table exists before the file runs: the extension finds the exact position.
    let (db, mut client) = session(
        kind,
        "exec_analysis",
        &[
            ("c.sql", "INSERT INTO t3 (id)\n  SELECT nme FROM t3;\n"),
            (
                "d.sql",
                "CREATE TABLE t4 (id int, name text);\nINSERT INTO t4 (id)\n  SELECT nme FROM t4;\n",
            ),
        ],
    );
    client
        .batch_execute("CREATE TABLE t3 (id int, name text)")
        .expect("t3");
    let err = execute(&mut client, "./c.sql").expect_err("must fail");
    assert_eq!(err.code, "42703");
    let expected = match kind {
        Kind::Extension => shape(
            "./c.sql",
            2,
            10,
            "column \"nme\" does not exist",
            "  SELECT nme FROM t3;",
            false,
        ),
        Kind::Portable => shape(
            "./c.sql",
            1,
            1,
            "column \"nme\" does not exist",
            "INSERT INTO t3 (id)",
            true,
        ),
    };
    assert_eq!(err.message, expected);
    // PostgreSQL's own hint is kept
    assert!(err.hint.is_some(), "{:?}", err.hint);

    // The column is unknown only because of the table the file's first statement created:
    // the file runs in one subtransaction, rolled back before the position is looked for,
    // so the extension cannot reproduce the error and says so; both kinds name the
    // statement.
    let err = execute(&mut client, "./d.sql").expect_err("must fail");
    assert_eq!(err.code, "42703");
    let note = match kind {
        Kind::Extension => {
            " (the exact position was not found again: this is where the statement starts)"
        }
        Kind::Portable => PORTABLE_NOTE,
    };
    assert_eq!(
        err.message,
        format!(
            "Failed in ./d.sql:2:1: column \"nme\" does not exist\n  2 | INSERT INTO t4 (id)\n    | ^{note}"
        )
    );
    drop(client);
    drop(db);
}

fn a_failing_file_is_undone_as_a_whole(kind: Kind) {
    // The file runs in one subtransaction: a caller that catches the error keeps nothing
    // of the file, however many statements ran before the failing one.
    let mut file = String::from("CREATE TABLE undone (n int);\n");
    for n in 0..100 {
        file.push_str(&format!("INSERT INTO undone VALUES ({n});\n"));
    }
    file.push_str("SELECT 1 / 0;\n");
    let (_db, mut client) = session(kind, "exec_undone", &[("u.sql", &file)]);
    client
        .batch_execute(
            "DO $$ BEGIN PERFORM pg_temp.pgmi_execute('./u.sql'); \
             EXCEPTION WHEN division_by_zero THEN NULL; END $$",
        )
        .expect("the caller catches the error");
    let left: Option<String> = client
        .query_one("SELECT pg_catalog.to_regclass('undone')::text", &[])
        .expect("query")
        .get(0);
    assert_eq!(left, None, "the file's table survived the caught failure");
}

fn runtime_error_points_at_its_statement(kind: Kind) {
    let (_db, mut client) = session(
        kind,
        "exec_runtime",
        &[(
            "d.sql",
            "SELECT 1;\n\n-- the next one fails\n\n  SELECT 1/0;\nSELECT 3;\n",
        )],
    );
    let err = execute(&mut client, "./d.sql").expect_err("must fail");
    assert_eq!(err.code, "22012");
    assert_eq!(
        err.message,
        shape("./d.sql", 5, 3, "division by zero", "  SELECT 1/0;", false)
    );
}

fn custom_sqlstate_detail_and_hint_are_kept(kind: Kind) {
    let (_db, mut client) = session(
        kind,
        "exec_custom",
        &[(
            "e.sql",
            "SELECT 1;\nDO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'PG123', DETAIL = 'the detail', HINT = 'the hint'; END $$;\n",
        )],
    );
    let err = execute(&mut client, "./e.sql").expect_err("must fail");
    assert_eq!(err.code, "PG123");
    assert_eq!(
        err.message,
        shape(
            "./e.sql",
            2,
            1,
            "custom failure",
            "DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'PG123', DETAIL = 'the detail', HINT = 'the hint'; END $$;",
            false
        )
    );
    assert_eq!(err.detail.as_deref(), Some("the detail"));
    assert_eq!(err.hint.as_deref(), Some("the hint"));
}

fn dollar_quoted_bodies_and_every_statement_run(kind: Kind) {
    let file = "-- header\n/* a block comment; too */\nCREATE TABLE app_t (id int, note text);\n\
CREATE FUNCTION add_two(n int) RETURNS int LANGUAGE plpgsql AS $fn$\nDECLARE\n    x int := n;\nBEGIN\n    x := x + 1;\n    x := x + 1;\n    RETURN x;\nEND\n$fn$;\n\
INSERT INTO app_t VALUES (add_two(1), 'a;b'), (2, $q$c;'d$q$);;\n\
DO $$ BEGIN INSERT INTO app_t VALUES (4, 'from a DO; block'); END $$;\n\
INSERT INTO app_t VALUES (5, 'é') -- no semicolon at the end\n";
    let (db, mut client) = session(kind, "exec_ok", &[("f.sql", file)]);
    if let Err(e) = execute(&mut client, "./f.sql") {
        panic!("{}: {}", e.code, e.message);
    }
    assert_eq!(
        db.text("SELECT string_agg(id || '=' || note, ' ' ORDER BY id, note) FROM app_t")
            .as_deref(),
        Some("2=c;'d 3=a;b 4=from a DO; block 5=é")
    );
}

fn unknown_path_is_p0002(kind: Kind) {
    let (_db, mut client) = session(kind, "exec_unknown", &[("a.sql", "SELECT 1;")]);
    let err = execute(&mut client, "./nope.sql").expect_err("must fail");
    assert_eq!(err.code, "P0002");
    assert!(err.message.contains("./nope.sql"), "{}", err.message);
    // a test file is not a project file
    let (_db2, mut client2) = session(
        kind,
        "exec_test_file",
        &[("__test__/test_a.sql", "SELECT 1;")],
    );
    let err = execute(&mut client2, "./__test__/test_a.sql").expect_err("must fail");
    assert_eq!(err.code, "P0002");
}

fn callers_search_path_is_used(kind: Kind) {
    let (db, mut client) = session(
        kind,
        "exec_search_path",
        &[(
            "g.sql",
            "INSERT INTO things VALUES (1);\nINSERT INTO things SELECT max(id) + 1 FROM things;\n",
        )],
    );
    client
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.things (id int); SET search_path = app, public;",
        )
        .expect("set up");
    if let Err(e) = execute(&mut client, "./g.sql") {
        panic!("{}: {}", e.code, e.message);
    }
    assert_eq!(db.count("SELECT count(*) FROM app.things"), 2);
}

fn standard_conforming_strings_off_is_honoured(kind: Kind) {
    // With it off, \' does not end the string: the `;` inside is no statement end.
    let (db, mut client) = session(
        kind,
        "exec_scs",
        &[(
            "h.sql",
            "CREATE TABLE s (v text);\nINSERT INTO s VALUES ('a\\'; b');\nSELECT 1/0;\n",
        )],
    );
    client
        .batch_execute("SET standard_conforming_strings = off; SET escape_string_warning = off")
        .expect("set");
    let err = execute(&mut client, "./h.sql").expect_err("must fail");
    assert_eq!(err.code, "22012");
    assert!(
        err.message
            .starts_with("Failed in ./h.sql:3:1: division by zero"),
        "{}",
        err.message
    );
    // the statements before it ran in the caller's transaction, which the error rolled back;
    // run them alone
    client
        .batch_execute("CREATE TABLE s (v text); INSERT INTO s VALUES ('a\\'; b')")
        .expect("same statements");
    assert_eq!(db.count("SELECT count(*) FROM s WHERE v = 'a''; b'"), 1);
}

/// Offsets are bytes of the UTF-8 text and columns characters, whatever the database
/// encoding: a LATIN1 database stores `é` as one byte, yet the same statements and
/// positions come out.
fn non_ascii_text_in_a_latin1_database(kind: Kind) {
    for encoding in ["UTF8", "LATIN1"] {
        let db = TestDb::unnamed(&format!("exec_{encoding}"));
        pgmi_tests::connect("postgres")
            .batch_execute(&format!(
                "CREATE DATABASE {} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
                db.name
            ))
            .expect("create database");
        if kind == Kind::Extension {
            db.client()
                .batch_execute("CREATE EXTENSION pgmi")
                .expect("extension");
        }
        let mut client = db.client();
        kind.load(
            &mut client,
            &[(
                "i.sql",
                "CREATE TABLE café (crème text);\nINSERT INTO café VALUES ('à la'); INSERT INTO café VALUES ('é',, 'x');\n"
                    .as_bytes(),
            )],
        );
        let err = execute(&mut client, "./i.sql").expect_err("must fail");
        assert_eq!(err.code, "42601", "{encoding}");
        let source = "INSERT INTO café VALUES ('à la'); INSERT INTO café VALUES ('é',, 'x');";
        let expected = match kind {
            Kind::Extension => shape(
                "./i.sql",
                2,
                64,
                "syntax error at or near \",\"",
                source,
                false,
            ),
            Kind::Portable => shape(
                "./i.sql",
                2,
                35,
                "syntax error at or near \",\"",
                source,
                true,
            ),
        };
        assert_eq!(err.message, expected, "{encoding}");
    }
}

/// A deploy.sql that loops over the plan, through `pgmi-upload deploy` and through a
/// `pgmi-upload bundle` script run by psql (portable session).
fn in_a_deploy(kind: Kind) {
    let project = Project::with_deploy(
        "BEGIN;\nDO $$\nDECLARE f record;\nBEGIN\n  FOR f IN SELECT path FROM pg_temp.pgmi_plan_view ORDER BY execution_order LOOP\n    PERFORM pg_temp.pgmi_execute(f.path);\n  END LOOP;\nEND $$;\nCOMMIT;\n",
    )
    .file("migrations/001_ok.sql", "CREATE TABLE ok_t (id int);\n")
    .file("migrations/002_bad.sql", "-- bad\nINSERT INTO ok_t VALUES (1);\nSELEC 1;\n");
    let db = kind.db("exec_deploy");
    let run = deploy_as(kind, &project, &db.name, &[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Failed in ./migrations/002_bad.sql:3:1: syntax error at or near \"SELEC\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("3 | SELEC 1;"), "{}", run.stderr);
    // The uploader's error block: the SQLSTATE ends the error's line, the excerpt follows
    // untouched.
    assert!(
        run.stderr
            .contains("syntax error at or near \"SELEC\" (SQLSTATE 42601)\n  3 | SELEC 1;\n"),
        "{}",
        run.stderr
    );

    if kind == Kind::Portable {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("deploy-script.sql");
        let script = script.to_str().expect("utf-8").to_string();
        let bundled = pgmi_upload(
            &[
                "bundle",
                project.path().to_str().expect("utf-8"),
                "-o",
                &script,
            ],
            &[],
        );
        assert_eq!(bundled.code, 0, "{}", bundled.stderr);
        let fresh = TestDb::empty("exec_bundle");
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &fresh.name,
                "-f",
                &script,
            ])
            .env(
                "PGHOST",
                std::env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".into()),
            )
            .output()
            .expect("run psql");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains(
                "Failed in ./migrations/002_bad.sql:3:1: syntax error at or near \"SELEC\""
            ),
            "{stderr}"
        );
        assert!(stderr.contains(PORTABLE_NOTE.trim_start()), "{stderr}");
    }
}

both_kinds!(
    syntax_error_at_the_start_of_a_line,
    syntax_error_in_the_middle_of_a_line,
    analysis_errors_are_positioned_against_what_existed_before_the_file,
    a_failing_file_is_undone_as_a_whole,
    runtime_error_points_at_its_statement,
    custom_sqlstate_detail_and_hint_are_kept,
    dollar_quoted_bodies_and_every_statement_run,
    unknown_path_is_p0002,
    callers_search_path_is_used,
    standard_conforming_strings_off_is_honoured,
    non_ascii_text_in_a_latin1_database,
    in_a_deploy,
);
