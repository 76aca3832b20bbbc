//! `CALL pgmi_test()` end to end (docs/testing.md): the plan, patterns, callbacks, failures,
//! isolation, and the notice and report outputs as golden files; every test runs against
//! both session kinds.

use pgmi_tests::{
    assert_golden, both_kinds, deploy_as, deploy_ok_as, redact, Client, Kind, Project, TestDb,
};

/// A three-level test tree with fixtures at two levels, under `project`.
fn example_tree(project: Project) -> Project {
    project
        .file(
            "__test__/_setup.sql",
            "INSERT INTO log VALUES ('root fixture');",
        )
        .file("__test__/test_basic.sql", "SELECT 1;")
        .file(
            "__test__/auth/_setup.sql",
            "INSERT INTO log VALUES ('auth fixture');",
        )
        .file("__test__/auth/test_login.sql", "SELECT 1;")
        .file("__test__/auth/oauth/test_google.sql", "SELECT 1;")
        .file("__test__/billing/test_stripe.sql", "SELECT 1;")
}

fn plan(c: &mut Client, query: &str) -> Vec<String> {
    c.query(query, &[])
        .expect(query)
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<String>>(2)
                    .unwrap_or_else(|| r.get::<_, String>(3)),
                r.get::<_, i32>(4)
            )
        })
        .collect()
}

/// Loads the project's files into a session of `kind` on `client`.
fn load_project(kind: Kind, client: &mut Client, project: &Project) {
    let files = pgmi_core::project::walk(project.path(), &Default::default()).expect("walk");
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_str(), f.bytes.as_slice()))
        .collect();
    kind.load(client, &files);
}

/// A session (loaded from an ordinary connection) over the project's files.
fn session(kind: Kind, db: &TestDb, project: &Project) -> Client {
    let mut c = db.client();
    load_project(kind, &mut c, project);
    c
}

/// The stderr of a deploy into a database the uploader created, with what depends on the
/// session kind checked exactly and then replaced by tokens, so both kinds share one golden
/// file: the `Session:` line and, for the extension, the line saying it installs it.
fn redact_session(kind: Kind, stderr: &str, db: &str) -> String {
    let expected = match kind {
        Kind::Extension => "Session: extension (installed the pgmi extension in schema \"public\")",
        Kind::Portable => "Session: portable (--session portable)",
    };
    let mut out = String::new();
    let mut installs = 0;
    let mut sessions = 0;
    for line in stderr.lines() {
        if line == "Installing extension pgmi" {
            installs += 1;
        } else if line.starts_with("Session: ") {
            assert_eq!(line, expected, "{stderr}");
            sessions += 1;
            out.push_str("Session: <kind>\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(sessions, 1, "{stderr}");
    assert_eq!(installs, usize::from(kind == Kind::Extension), "{stderr}");
    redact(&out, db)
}

// The plan, whole and filtered, from both entry points.
fn plan_of_a_three_level_tree_whole_and_filtered(kind: Kind) {
    let db = kind.db("plan");
    let mut c = session(kind, &db, &example_tree(Project::with_deploy("SELECT 1;")));
    let full = plan(&mut c, "SELECT * FROM pg_temp.pgmi_test_plan()");
    assert_eq!(
        full,
        [
            "1 fixture ./__test__/_setup.sql 0",
            "2 test ./__test__/test_basic.sql 0",
            "3 fixture ./__test__/auth/_setup.sql 1",
            "4 test ./__test__/auth/test_login.sql 1",
            "5 test ./__test__/auth/oauth/test_google.sql 2",
            "6 teardown ./__test__/auth/oauth/ 2",
            "7 teardown ./__test__/auth/ 1",
            "8 test ./__test__/billing/test_stripe.sql 1",
            "9 teardown ./__test__/billing/ 1",
            "10 teardown ./__test__/ 0"
        ]
    );
    if kind == Kind::Extension {
        // the extension's own function, which the session's calls
        assert_eq!(
            plan(&mut c, "SELECT * FROM pgmi_test_plan()"),
            full,
            "extension and pg_temp agree"
        );
    }
    assert_eq!(
        plan(
            &mut c,
            "SELECT * FROM pg_temp.pgmi_test_plan(p_pattern => 'oauth')"
        ),
        [
            "1 fixture ./__test__/_setup.sql 0",
            "2 fixture ./__test__/auth/_setup.sql 1",
            "3 test ./__test__/auth/oauth/test_google.sql 2",
            "4 teardown ./__test__/auth/oauth/ 2",
            "5 teardown ./__test__/auth/ 1",
            "6 teardown ./__test__/ 0"
        ]
    );
}

// Byte order even where the database collation would say otherwise.
fn test_order_is_byte_order_on_a_linguistic_collation(kind: Kind) {
    let db = kind.linguistic_db("linguistic");
    let project = Project::with_deploy("SELECT 1;")
        .file("__test__/test_a.sql", "SELECT 1;")
        .file("__test__/test-b.sql", "SELECT 1;")
        .file("__test__/testc.sql", "SELECT 1;");
    let mut c = session(kind, &db, &project);
    let linguistic: Vec<String> = c
        .query(
            "SELECT filename FROM pgmi_test_source_view ORDER BY filename",
            &[],
        )
        .expect("order")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_ne!(
        linguistic[0], "test-b.sql",
        "the database collation is not byte order"
    );
    let expected = [
        "1 test ./__test__/test-b.sql 0",
        "2 test ./__test__/test_a.sql 0",
        "3 test ./__test__/testc.sql 0",
        "4 teardown ./__test__/ 0",
    ];
    assert_eq!(
        plan(&mut c, "SELECT * FROM pg_temp.pgmi_test_plan()"),
        expected
    );
    if kind == Kind::Extension {
        assert_eq!(plan(&mut c, "SELECT * FROM pgmi_test_plan()"), expected);
    }
}

fn server_error(
    result: Result<Vec<postgres::Row>, postgres::Error>,
) -> (String, String, Option<String>) {
    let err = result.expect_err("must fail");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    (
        db.code().code().to_string(),
        db.message().to_string(),
        db.hint().map(str::to_string),
    )
}

// Pattern validation, empty plans and the compatibility generator.
fn patterns_callbacks_and_the_compatibility_generator(kind: Kind) {
    let db = kind.db("generate");
    let mut empty = session(kind, &db, &Project::with_deploy("SELECT 1;"));
    let (code, message, hint) =
        server_error(empty.query("SELECT * FROM pg_temp.pgmi_test_plan('(')", &[]));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("P0001", "Invalid regex pattern: (")
    );
    assert_eq!(
        hint.as_deref(),
        Some("Pattern must be a valid PostgreSQL POSIX regular expression")
    );
    let sql: String = empty
        .query_one("SELECT pg_temp.pgmi_test_generate()", &[])
        .expect("generate")
        .get(0);
    assert!(sql.starts_with("DO $__pgmi_no_tests__$"), "{sql}");
    let (code, message, _) = server_error(empty.query(sql.as_str(), &[]));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("P0002", "pgmi: no tests were discovered")
    );

    let mut c = session(kind, &db, &example_tree(Project::with_deploy("SELECT 1;")));
    let sql: String = c
        .query_one("SELECT pg_temp.pgmi_test_generate('zzz')", &[])
        .expect("generate")
        .get(0);
    let (code, message, _) = server_error(c.query(sql.as_str(), &[]));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("P0002", "pgmi: no tests matched the requested pattern")
    );
    let (code, message, _) =
        server_error(c.query("SELECT pg_temp.pgmi_test_generate(NULL, 'a.b.c')", &[]));
    assert_eq!(code, "22023");
    assert_eq!(
        message,
        "Invalid callback name: a.b.c. Expected [schema.]function identifier."
    );

    let sql: String = c
        .query_one("SELECT pg_temp.pgmi_test_generate('oauth')", &[])
        .expect("generate")
        .get(0);
    let savepoints: Vec<&str> = sql.lines().filter(|l| l.starts_with("SAVEPOINT")).collect();
    assert_eq!(
        savepoints,
        [
            "SAVEPOINT __pgmi_d1__;",
            "SAVEPOINT __pgmi_d2__;",
            "SAVEPOINT __pgmi_d3__;",
            "SAVEPOINT __pgmi_t4__;"
        ]
    );
    assert!(!sql.ends_with('\n'));
    assert!(
        sql.lines()
            .last()
            .expect("lines")
            .contains("ROW('suite_end', NULL, '', 0, 6, NULL)"),
        "{sql}"
    );
}

fn tests_project(deploy: &str) -> Project {
    Project::with_deploy(deploy)
        .file("migrations/001.sql", "CREATE TABLE items (id int);")
        .file("__test__/_setup.sql", "INSERT INTO items VALUES (1);")
        .file("__test__/test_a.sql", "INSERT INTO items VALUES (2);")
        .file(
            "__test__/test_b.sql",
            "DO $$ BEGIN IF (SELECT count(*) FROM items) <> 1 THEN \
               RAISE EXCEPTION 'expected exactly the fixture row, found %', (SELECT count(*) FROM items); \
             END IF; END $$;",
        )
}

const APPLY_MIGRATIONS: &str = "DO $$ DECLARE m record; BEGIN \
    FOR m IN SELECT content FROM pgmi_plan_view WHERE path LIKE './migrations/%' ORDER BY execution_order \
    LOOP EXECUTE m.content; END LOOP; END $$;\n";

// A passing suite: its rows are rolled back, and the notice stream and both report formats
// match their golden files.
fn passing_suite_notices_isolation_and_reports(kind: Kind) {
    let db = TestDb::unnamed("suite");
    let project = tests_project(&format!(
        "BEGIN;\n{APPLY_MIGRATIONS}CALL pgmi_test();\nCOMMIT;\n"
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let tap = dir.path().join("report.tap");
    let run = deploy_as(
        kind,
        &project,
        &db.name,
        &[
            "--test-report",
            &format!("junit={}", junit.display()),
            "--test-report",
            &format!("tap={}", tap.display()),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_golden(
        "suite_pass.stderr",
        &redact_session(kind, &run.stderr, &db.name),
    );
    assert_golden(
        "suite_pass.junit.xml",
        &redact(&std::fs::read_to_string(&junit).expect("junit"), &db.name),
    );
    assert_golden(
        "suite_pass.tap",
        &redact(&std::fs::read_to_string(&tap).expect("tap"), &db.name),
    );
    assert_eq!(
        db.count("SELECT count(*) FROM items"),
        0,
        "fixture and test rows are rolled back"
    );
}

// --verbose adds the DEBUG lines, each with its timestamp.
fn verbose_shows_rollback_and_teardown_lines(kind: Kind) {
    let db = TestDb::unnamed("verbose");
    let project = tests_project(&format!(
        "BEGIN;\n{APPLY_MIGRATIONS}CALL pgmi_test();\nCOMMIT;\n"
    ));
    let run = deploy_ok_as(kind, &project, &db.name, &["--verbose"]);
    let has = |needle: &str| {
        run.stderr
            .lines()
            .any(|l| l.starts_with('[') && l.ends_with(needle))
    };
    assert!(
        has("s] [pgmi] Rollback: ./__test__/test_a.sql"),
        "{}",
        run.stderr
    );
    assert!(
        has("s] [pgmi] Rollback: ./__test__/test_b.sql"),
        "{}",
        run.stderr
    );
    assert!(has("s] [pgmi] Teardown: ./__test__/"), "{}", run.stderr);
}

// A real procedure works without BEGIN, inside DO, and inside functions and procedures. The
// uploader rewrites only the original pgmi's macro forms, and a DO body (a literal) or a
// NULL callback argument is none of them: such calls name
// pg_temp.pgmi_test, which every session has. Unqualified, they reach the extension's own
// procedure, which only extension sessions have.
fn works_in_autocommit_and_inside_do_blocks(kind: Kind) {
    let mut calls = vec![
        "CALL pgmi_test();",
        "DO $$ BEGIN CALL pg_temp.pgmi_test(); END $$;",
        "CALL pg_temp.pgmi_test(NULL, NULL);",
    ];
    if kind == Kind::Extension {
        calls.push("DO $$ BEGIN CALL pgmi_test(); END $$;");
        calls.push("CALL pgmi_test(NULL, NULL);");
    }
    for call in calls {
        let db = TestDb::unnamed("contexts");
        let project = tests_project(&format!("{APPLY_MIGRATIONS}{call}\n"));
        let run = deploy_as(kind, &project, &db.name, &[]);
        assert_eq!(run.code, 0, "{call}: {}", run.stderr);
        assert!(
            run.stderr.contains("[pgmi] Test suite completed (4 steps)"),
            "{call}: {}",
            run.stderr
        );
        assert_eq!(db.count("SELECT count(*) FROM items"), 0, "{call}");
    }
}

// Which callback side effects persist, on a three-level tree.
fn only_three_callback_events_persist(kind: Kind) {
    let db = TestDb::unnamed("events");
    let deploy_sql = "BEGIN;\n\
        CREATE TABLE log (what text);\n\
        CREATE TABLE events (event text, ordinal int, depth int);\n\
        CREATE FUNCTION pg_temp.event_logger(e pg_temp.pgmi_test_event) RETURNS void LANGUAGE sql \
            AS $$ INSERT INTO events VALUES (e.event, e.ordinal, e.depth) $$;\n\
        CALL pgmi_test(NULL, 'pg_temp.event_logger');\n\
        COMMIT;\n";
    let project = example_tree(Project::with_deploy(deploy_sql));
    let run = deploy_as(kind, &project, &db.name, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut c = db.client();
    let rows: Vec<String> = c
        .query(
            "SELECT event || ' ' || ordinal || ' ' || depth FROM events",
            &[],
        )
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        ["suite_start 0 0", "teardown_end 10 0", "suite_end 10 0"]
    );
    assert_eq!(
        db.count("SELECT count(*) FROM log"),
        0,
        "fixture effects are rolled back"
    );
}

// An unknown callback, an unsafe callback name, an invalid pattern and a pattern that
// matches no test all fail on the server, with their SQLSTATE (exit 13).
fn bad_callbacks_and_patterns_fail_on_the_server(kind: Kind) {
    for (call, sqlstate) in [
        ("CALL pgmi_test(NULL, 'my_cb');", "42883"),
        ("CALL pgmi_test('.*', 'DROP TABLE users; --');", "22023"),
        ("CALL pgmi_test('./api/**');", "P0001"),
        ("CALL pgmi_test('zzz');", "P0002"),
    ] {
        let db = TestDb::unnamed("badcall");
        let run = deploy_as(
            kind,
            &tests_project(&format!("{APPLY_MIGRATIONS}{call}\n")),
            &db.name,
            &["--json"],
        );
        assert_eq!(run.code, 13, "{call}: {}", run.stderr);
        assert_eq!(run.json()["sqlstate"], sqlstate, "{call}");
    }
}

// A failing test aborts the head; the error keeps its SQLSTATE.
fn failing_test_rolls_back_the_head(kind: Kind) {
    let db = TestDb::unnamed("failing");
    let project = tests_project(&format!(
        "BEGIN;\n{APPLY_MIGRATIONS}CALL pgmi_test();\nCOMMIT;\n"
    ))
    .file("__test__/sub/test_c.sql", "SELECT 1/0;");
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let tap = dir.path().join("report.tap");
    let run = deploy_as(
        kind,
        &project,
        &db.name,
        &[
            "--json",
            "--test-report",
            &format!("junit={}", junit.display()),
            "--test-report",
            &format!("tap={}", tap.display()),
        ],
    );
    assert_eq!(run.code, 13, "{}", run.stderr);
    let json = run.json();
    assert_eq!(
        json["error"],
        "execution failed: ERROR: Failed in ./__test__/sub/test_c.sql: division by zero (SQLSTATE 22012)"
    );
    assert_eq!(json["failedFile"], "./__test__/sub/test_c.sql");
    assert!(json.get("detail").is_none(), "{json}");
    // The CONTEXT of a test failure is all pgmi's own frames (pg_temp.pgmi_test and what
    // it calls), which say nothing about the user's code: it is left out, in --json and
    // in the error block.
    assert!(json.get("where").is_none(), "{json}");
    assert!(!run.stderr.contains("WHERE:"), "{}", run.stderr);
    assert!(
        db.text("SELECT to_regclass('items')::text").is_none(),
        "the migration is rolled back"
    );
    assert_golden(
        "suite_fail.junit.xml",
        &redact(&std::fs::read_to_string(&junit).expect("junit"), &db.name),
    );
    assert_golden(
        "suite_fail.tap",
        &redact(&std::fs::read_to_string(&tap).expect("tap"), &db.name),
    );
}

// SQLSTATE and DETAIL survive, HINT does not.
fn failure_keeps_sqlstate_and_detail_drops_hint(kind: Kind) {
    let db = TestDb::unnamed("detail");
    let project = tests_project(&format!("{APPLY_MIGRATIONS}CALL pgmi_test();\n")).file(
        "__test__/test_dup.sql",
        "DO $$ BEGIN RAISE EXCEPTION 'dup' USING ERRCODE = '23505', DETAIL = 'det', HINT = 'hin'; END $$;",
    );
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["sqlstate"], "23505");
    assert_eq!(json["detail"], "det");
    assert!(json.get("hint").is_none(), "{json}");
}

// A failing fixture stops the suite before any test.
fn failing_fixture_stops_the_suite(kind: Kind) {
    let db = TestDb::unnamed("fixture");
    let project = tests_project(&format!("{APPLY_MIGRATIONS}CALL pgmi_test();\n")).file(
        "__test__/_setup.sql",
        "DO $$ BEGIN RAISE EXCEPTION 'Fixture explosion'; END $$;",
    );
    let run = deploy_as(kind, &project, &db.name, &[]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert!(run.stderr.contains("Fixture explosion"), "{}", run.stderr);
    let after_fixture = run
        .stderr
        .split("[pgmi] Fixture:")
        .nth(1)
        .expect("fixture notice");
    assert!(!after_fixture.contains("[pgmi] Test:"), "{}", run.stderr);
}

// Isolation: DDL, TRUNCATE and DROP inside tests are undone; a sequence created in a test
// disappears, while nextval() on an existing sequence is, as always in PostgreSQL, not
// rolled back.
fn tests_cannot_leave_anything_behind(kind: Kind) {
    let db = TestDb::unnamed("isolation");
    let deploy_sql = "CREATE TABLE keep (id int); INSERT INTO keep VALUES (1), (2);\n\
                      CREATE SEQUENCE counter;\nCALL pgmi_test();\n";
    let project = Project::with_deploy(deploy_sql)
        .file(
            "__test__/test_ddl.sql",
            "CREATE TABLE made_in_test (id int); ALTER TABLE keep ADD COLUMN extra int;",
        )
        .file("__test__/test_truncate.sql", "TRUNCATE keep;")
        .file("__test__/test_drop.sql", "DROP TABLE keep;")
        .file(
            "__test__/test_sequence.sql",
            "CREATE SEQUENCE made_seq; SELECT nextval('counter');",
        );
    deploy_ok_as(kind, &project, &db.name, &[]);
    assert_eq!(db.count("SELECT count(*) FROM keep"), 2);
    assert!(db
        .text("SELECT to_regclass('made_in_test')::text")
        .is_none());
    assert!(db.text("SELECT to_regclass('made_seq')::text").is_none());
    assert_eq!(
        db.count("SELECT count(*) FROM information_schema.columns WHERE table_name = 'keep'"),
        1
    );
    assert_eq!(
        db.count("SELECT last_value FROM counter"),
        1,
        "nextval is never rolled back"
    );
}

// Fixtures nest three levels deep: each level sees every ancestor's fixture, siblings never
// see each other.
fn nested_fixtures_three_levels_deep(kind: Kind) {
    let db = TestDb::unnamed("nested");
    let check = |expected: &[&str]| {
        format!(
            "DO $$ BEGIN IF (SELECT string_agg(what, ',' ORDER BY what) FROM seen) IS DISTINCT FROM '{}' THEN \
               RAISE EXCEPTION 'saw %', (SELECT string_agg(what, ',' ORDER BY what) FROM seen); END IF; END $$;",
            expected.join(",")
        )
    };
    let project = Project::with_deploy("CREATE TABLE seen (what text);\nCALL pgmi_test();\n")
        .file("__test__/_setup.sql", "INSERT INTO seen VALUES ('a');")
        .file(
            "__test__/test_1.sql",
            format!("{} INSERT INTO seen VALUES ('t1');", check(&["a"])),
        )
        .file("__test__/b/_setup.sql", "INSERT INTO seen VALUES ('b');")
        .file(
            "__test__/b/test_2.sql",
            format!("{} INSERT INTO seen VALUES ('t2');", check(&["a", "b"])),
        )
        .file("__test__/b/c/_setup.sql", "INSERT INTO seen VALUES ('c');")
        .file("__test__/b/c/test_3.sql", check(&["a", "b", "c"]))
        .file("__test__/b/c/test_4.sql", check(&["a", "b", "c"]))
        .file("__test__/z/test_5.sql", check(&["a"]));
    let run = deploy_ok_as(kind, &project, &db.name, &[]);
    assert_eq!(
        run.stderr.matches("[pgmi] Test:").count(),
        5,
        "{}",
        run.stderr
    );
    assert_eq!(db.count("SELECT count(*) FROM seen"), 0);
}

// Persisting the plan into a permanent table.
fn persist_test_plan(kind: Kind) {
    let db = kind.db("persist");
    let mut c = session(kind, &db, &example_tree(Project::with_deploy("SELECT 1;")));
    c.batch_execute("SELECT pg_temp.pgmi_persist_test_plan('public', NULL)")
        .expect("persist");
    assert_eq!(db.count("SELECT count(*) FROM public.pgmi_test_plan"), 10);
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    drop(c);
    let sink = notices.clone();
    let mut c = pgmi_tests::config(&db.name)
        .notice_callback(move |n| sink.lock().expect("lock").push(n.message().to_string()))
        .connect(postgres::NoTls)
        .expect("connect");
    let project = example_tree(Project::with_deploy("SELECT 1;"));
    load_project(kind, &mut c, &project);
    c.batch_execute("SELECT pg_temp.pgmi_persist_test_plan('public', 'oauth')")
        .expect("persist again");
    assert!(
        notices
            .lock()
            .expect("lock")
            .iter()
            .any(|n| n == "relation \"pgmi_test_plan\" already exists, skipping"),
        "{:?}",
        notices.lock().expect("lock")
    );
    assert_eq!(db.count("SELECT count(*) FROM public.pgmi_test_plan"), 6);
    let (code, ..) = server_error(c.query("SELECT pg_temp.pgmi_persist_test_plan('nope')", &[]));
    assert_eq!(code, "3F000");
}

both_kinds!(
    plan_of_a_three_level_tree_whole_and_filtered,
    test_order_is_byte_order_on_a_linguistic_collation,
    patterns_callbacks_and_the_compatibility_generator,
    passing_suite_notices_isolation_and_reports,
    verbose_shows_rollback_and_teardown_lines,
    works_in_autocommit_and_inside_do_blocks,
    only_three_callback_events_persist,
    bad_callbacks_and_patterns_fail_on_the_server,
    failing_test_rolls_back_the_head,
    failure_keeps_sqlstate_and_detail_drops_hint,
    failing_fixture_stops_the_suite,
    tests_cannot_leave_anything_behind,
    nested_fixtures_three_levels_deep,
    persist_test_plan,
);
