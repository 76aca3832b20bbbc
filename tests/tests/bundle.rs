//! `pgmi-upload bundle`: scripts run through the real `psql` perform the same deploy as
//! `pgmi-upload deploy`, in both session kinds.

use std::process::Command;

use pgmi_tests::{both_kinds, deploy_ok_as, pgmi_upload, Kind, Project, Run, TestDb};

/// Runs the real `psql -X -q -d <database> <args>` against the test server (the harness's
/// `PGHOST`/`PGPORT`/`PGUSER` defaults, as `pgmi_upload` uses them).
fn psql(database: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-d", database]).args(args);
    if std::env::var_os("PGHOST").is_none() {
        cmd.env("PGHOST", "/var/run/postgresql");
    }
    let out = cmd.output().expect("run psql");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes the bundle script of `project` (`--session <kind>` plus `extra`) into a temp
/// directory of its own (inside the project it would become a project file next time);
/// returns the directory guard, the script's path and the run.
fn bundle(kind: Kind, project: &Project, extra: &[&str]) -> (tempfile::TempDir, String, Run) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("deploy-script.sql");
    let out = out.to_str().expect("utf-8 path").to_string();
    let mut args = vec![
        "bundle",
        project.path().to_str().expect("utf-8 path"),
        "--session",
        kind.flag(),
        "-o",
        &out,
    ];
    args.extend_from_slice(extra);
    let run = pgmi_upload(&args, &[]);
    (dir, out, run)
}

fn run_script(db: &TestDb, script: &str, vars: &[&str]) -> Run {
    // The previous script's server process may still hold the deploy lock for a moment.
    db.wait_until_idle();
    let mut args = vec!["-v", "ON_ERROR_STOP=1"];
    for v in vars {
        args.push("-v");
        args.push(v);
    }
    args.push("-f");
    args.push(script);
    psql(&db.name, &args)
}

fn exists(db: &TestDb, table: &str) -> bool {
    db.text(&format!("SELECT to_regclass('public.{table}')::text"))
        .is_some()
}

/// A project whose deploy.sql records what the session held: checksums and plan order,
/// parameters, and the test suite's events.
fn recording_project() -> Project {
    Project::with_deploy(
        "BEGIN;
CREATE TABLE plan AS SELECT execution_order, path, checksum, generic_id, sort_key FROM pgmi_plan_view;
CREATE TABLE params AS SELECT key, value FROM pgmi_parameter_view;
CREATE TABLE events (n serial, event text, path text);
CREATE FUNCTION pg_temp.log(e pg_temp.pgmi_test_event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.events (event, path) VALUES (e.event, e.path) $$;
CALL pgmi_test(, 'pg_temp.log');
COMMIT;
CREATE TABLE after_head (x int);
",
    )
    .file(
        "migrations/001_a.sql",
        "/*\n<pgmi-meta id=\"5b0c2a1e-7c1d-4a8e-9f00-000000000001\" idempotent=\"false\">\n<sortKeys><key>2</key><key>0</key></sortKeys>\n</pgmi-meta>\n*/\nCREATE TABLE a (id int); -- café\n",
    )
    .file("migrations/002_b.sql", "SELECT\t'tab\\and\\backslash';\r\n")
    .file("__test__/_setup.sql", "CREATE TABLE fixture_t (x int);")
    .file("__test__/test_one.sql", "SELECT 1 FROM fixture_t;")
    .file("__test__/nested/test_two.sql", "SELECT 2;")
}

fn table_text(db: &TestDb, query: &str) -> String {
    db.client()
        .query(query, &[])
        .expect(query)
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// The script deploys exactly what the uploader deploys: same plan, checksums, parameters
// (one written into the script, one read from a psql variable) and test events.
fn script_deploys_like_the_uploader(kind: Kind) {
    let project = recording_project();
    let via_upload = kind.db("bundle_upload");
    deploy_ok_as(
        kind,
        &project,
        &via_upload.name,
        &["--param", "region=eu", "--param", "db_password=s3cret"],
    );
    let via_psql = kind.db("bundle_psql");
    let (_dir, script, made) = bundle(
        kind,
        &project,
        &["--param", "region=eu", "--param-var", "db_password=PW"],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stderr.contains("1 test macro(s) rewritten"),
        "{}",
        made.stderr
    );
    let text = std::fs::read_to_string(&script).expect("script");
    assert!(!text.contains("s3cret"));
    let ran = run_script(&via_psql, &script, &["PW=s3cret"]);
    assert_eq!(ran.code, 0, "psql failed:\n{}", ran.stderr);
    for query in [
        "SELECT execution_order::text, path, checksum, generic_id::text, sort_key FROM plan ORDER BY 1",
        "SELECT key, value FROM params ORDER BY key",
        "SELECT n::text, event, path FROM events ORDER BY n",
    ] {
        let expected = table_text(&via_upload, query);
        assert!(!expected.is_empty(), "{query} is empty");
        assert_eq!(table_text(&via_psql, query), expected, "{query}");
    }
    assert_eq!(
        table_text(
            &via_psql,
            "SELECT value FROM params WHERE key = 'db_password'"
        ),
        "s3cret"
    );
    assert!(exists(&via_psql, "after_head"));
    assert!(!exists(&via_psql, "fixture_t"), "tests are rolled back");
}

// No terminator: the whole script is one atomic unit, in psql too.
fn head_without_terminator_is_atomic(kind: Kind) {
    let project =
        Project::with_deploy("CREATE TABLE a (x int);\nCREATE TABLE b (x int);\nSELECT 1/0;\n");
    let db = kind.db("bundle_atomic");
    let (_dir, script, made) = bundle(kind, &project, &[]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let ran = run_script(&db, &script, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.stderr.contains("division by zero"), "{}", ran.stderr);
    assert!(!exists(&db, "a") && !exists(&db, "b"));
}

// After the head, each statement commits on its own, as with the uploader.
fn tail_statements_commit_one_by_one(kind: Kind) {
    let project = Project::with_deploy(
        "BEGIN; CREATE TABLE a (x int); COMMIT;\nCREATE TABLE b (x int);\nSELECT 1/0;\nCREATE TABLE c (x int);\n",
    );
    let db = kind.db("bundle_tail");
    let (_dir, script, _) = bundle(kind, &project, &[]);
    let ran = run_script(&db, &script, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(exists(&db, "a") && exists(&db, "b") && !exists(&db, "c"));
}

// A failing test stops psql with the test runner's error; nothing of the head remains.
fn failing_test_stops_the_script(kind: Kind) {
    let project =
        Project::with_deploy("BEGIN;\nCREATE TABLE t (x int);\nCALL pgmi_test();\nCOMMIT;\n")
            .file("__test__/test_bad.sql", "SELECT 1/0;");
    let db = kind.db("bundle_failing");
    let (_dir, script, _) = bundle(kind, &project, &[]);
    let ran = run_script(&db, &script, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("Failed in ./__test__/test_bad.sql: division by zero"),
        "{}",
        ran.stderr
    );
    assert!(!exists(&db, "t"));
}

// A missing psql variable stops the script before anything is touched.
fn missing_psql_variable_touches_nothing(kind: Kind) {
    let project = Project::with_deploy("CREATE TABLE t (x int);");
    let db = kind.db("bundle_var");
    let (_dir, script, _) = bundle(kind, &project, &["--param-var", "api_token=TOKEN"]);
    let ran = run_script(&db, &script, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("psql variable TOKEN is not set"),
        "{}",
        ran.stderr
    );
    assert!(!exists(&db, "t"));
}

both_kinds!(
    script_deploys_like_the_uploader,
    head_without_terminator_is_atomic,
    tail_statements_commit_one_by_one,
    failing_test_stops_the_script,
    missing_psql_variable_touches_nothing,
);

// Secret-looking values are never written into a script (exit 10, before anything).
#[test]
fn secret_looking_parameters_are_refused() {
    let project = Project::with_deploy("SELECT 1;");
    for key in ["db_password", "API_TOKEN", "signing_key"] {
        let param = format!("{key}=hunter2");
        let (_dir, script, made) = bundle(Kind::Portable, &project, &["--param", &param]);
        assert_eq!(made.code, 10, "{key}: {}", made.stderr);
        // The hint's example survives the redaction of `password=…`.
        assert!(
            made.stderr.contains(&format!(
                "--param-var KEY=VAR, with KEY {} and VAR the name of a psql variable",
                key.to_ascii_lowercase()
            )),
            "{}",
            made.stderr
        );
        assert!(!made.stderr.contains("[redacted]"), "{}", made.stderr);
        assert!(!made.stderr.contains("hunter2"));
        assert!(!std::path::Path::new(&script).exists());
    }
}

// The offline checks are deploy's: a broken project gets the same exit code.
#[test]
fn broken_projects_fail_as_deploy_does() {
    let missing = Project::new().file("migrations/001.sql", "SELECT 1;");
    let (_d, _s, made) = bundle(Kind::Portable, &missing, &[]);
    assert_eq!(made.code, 14, "{}", made.stderr);
    let nul =
        Project::with_deploy("SELECT 1;").file("migrations/001.sql", b"SELECT 1;\0".as_slice());
    let (_d, _s, made) = bundle(Kind::Portable, &nul, &[]);
    assert_eq!(made.code, 10, "{}", made.stderr);
    assert!(made.stderr.contains("001.sql"), "{}", made.stderr);
}

// A deploy.sql that ends inside an open transaction fails under psql too, nothing of it
// committed; --lock-timeout (or lock_timeout in pgmi.yaml) is written into the script.
#[test]
fn open_transaction_fails_and_lock_timeout_is_applied() {
    let project = Project::with_deploy("BEGIN;\nCREATE TABLE left_open (id int);\n");
    let db = TestDb::empty("bundle_open_tx");
    let (_dir, script, made) = bundle(Kind::Portable, &project, &[]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let run = run_script(&db, &script, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("ended inside an open transaction"),
        "{}",
        run.stderr
    );
    assert!(!exists(&db, "left_open"));

    let show =
        "DO $$ BEGIN RAISE NOTICE 'lock_timeout is %', current_setting('lock_timeout'); END $$;\n";
    let project = Project::with_deploy(show).file("pgmi.yaml", "lock_timeout: 2s\n");
    for (extra, expected) in [(&[][..], "2s"), (&["--lock-timeout", "150ms"][..], "150ms")] {
        let (_dir, script, made) = bundle(Kind::Portable, &project, extra);
        assert_eq!(made.code, 0, "{}", made.stderr);
        let run = run_script(&db, &script, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("lock_timeout is {expected}")),
            "{}",
            run.stderr
        );
    }
    let (_dir, _script, made) = bundle(Kind::Portable, &project, &["--lock-timeout", "soon"]);
    assert_eq!(made.code, 10, "{}", made.stderr);
}
