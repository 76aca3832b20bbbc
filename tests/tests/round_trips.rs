//! What a deploy costs over a network: its round trips, counted at a loopback link
//! (`pgmi_tests::latency`) in front of the test server, and the paths that end a session in
//! one message (README, "Performance"). Both session kinds.

use pgmi_tests::latency::Link;
use pgmi_tests::{both_kinds, pgmi_upload, Kind, Project, Run, TestDb};

/// `pgmi-upload deploy` through `link`, with `--json` and `extra` arguments.
fn deploy_through(link: &Link, kind: Kind, project: &Project, db: &str, extra: &[&str]) -> Run {
    let port = link.port.to_string();
    let path = project.path().to_str().expect("utf-8 path").to_string();
    let mut args = vec![
        "deploy",
        &path,
        "-d",
        db,
        "--session",
        kind.flag(),
        "--json",
    ];
    args.extend_from_slice(extra);
    pgmi_upload(
        &args,
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGSSLMODE", "disable"),
        ],
    )
}

/// The most round trips a one-file deploy may take, connection included: start-up (1),
/// version and deploy lock (1), pooler check with the extension lookup (1; with the
/// extension, the start of its load's transaction and the upload table too), the load, the
/// one statement of deploy.sql (1) and the close (1). The load: with the extension, the
/// bundle's COPY (3), then `pgmi_load` with COMMIT and the settings (1), parameters or not
/// (they travel inside the bundle); the portable session: its transaction's start, the
/// session's SQL, its end with the settings, and the COPY (3) of each table that has rows
/// (here, with a parameter, `_pgmi_parameter`). Both were 16 (17 with `sslmode=prefer`)
/// before these were merged.
fn budget(kind: Kind, parameters: bool) -> u64 {
    match (kind, parameters) {
        (Kind::Extension, _) => 9,
        (Kind::Portable, false) => 8,
        (Kind::Portable, true) => 11,
    }
}

// A one-file deploy stays within its round-trip budget, with and without a parameter.
fn one_file_deploy_round_trips(kind: Kind) {
    for parameters in [false, true] {
        let extra: &[&str] = if parameters {
            &["--param", "region=eu"]
        } else {
            &[]
        };
        let trips = one_file_trips(kind, extra);
        assert!(
            trips <= budget(kind, parameters),
            "{trips} round trips with parameters: {parameters}, budget {}",
            budget(kind, parameters)
        );
    }
}

/// Round trips of a one-file deploy through a fresh link, with `extra` arguments.
fn one_file_trips(kind: Kind, extra: &[&str]) -> u64 {
    let db = kind.db("trips");
    let link = Link::start(std::time::Duration::ZERO);
    let project = Project::with_deploy("CREATE TABLE one_file (id bigint PRIMARY KEY);\n");
    let before = link.round_trips();
    let run = deploy_through(&link, kind, &project, &db.name, extra);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let trips = link.round_trips() - before;
    // The count is a real one: the deploy cannot take fewer than its start-up, load,
    // statement and close.
    assert!(trips >= 4, "{trips} round trips counted");
    assert_eq!(
        db.text("SELECT to_regclass('one_file')::text").as_deref(),
        Some("one_file")
    );
    trips
}

/// Deploys a project with one migration and one passing test, whose deploy.sql runs the
/// migration and the tests inside `BEGIN;` and then `rest`; checks the exit code and that
/// the report counts the one passed test.
fn deploy_tested(kind: Kind, label: &str, rest: &str, code: i32) -> (TestDb, Run) {
    let db = kind.db(label);
    let project = Project::with_deploy(&format!(
        "BEGIN;\nSELECT pg_temp.pgmi_execute('./migrations/001.sql');\nCALL pg_temp.pgmi_test();\n{rest}"
    ))
    .file("migrations/001.sql", "CREATE TABLE t (id int);\n")
    .file("__test__/test_t.sql", "SELECT 1 FROM t;\n");
    let run = pgmi_tests::deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, code, "{}", run.stderr);
    assert_eq!(
        run.json()["tests"],
        serde_json::json!({"run": 1, "passed": 1, "failed": 0}),
        "{}",
        run.stdout
    );
    (db, run)
}

// The test results reach the report when deploy.sql ends outside a transaction (the close's
// one message) ...
fn results_after_a_closed_deploy(kind: Kind) {
    let (db, _) = deploy_tested(kind, "close_ok", "COMMIT;\n", 0);
    assert_eq!(
        db.text("SELECT to_regclass('t')::text").as_deref(),
        Some("t")
    );
    // The deploy lock was released before the session ended: another session takes it.
    db.wait_until_idle();
    assert_eq!(
        db.text("SELECT pg_try_advisory_lock(hashtextextended('pgmi.deploy.' || current_database(), 0))::text")
            .as_deref(),
        Some("true")
    );
}

// ... inside a block it left open (read in the block, which is then rolled back: exit 13) ...
fn results_after_an_open_block(kind: Kind) {
    let (db, run) = deploy_tested(kind, "close_open", "", 13);
    assert!(
        run.stderr.contains("ended inside an open transaction"),
        "{}",
        run.stderr
    );
    assert_eq!(db.text("SELECT to_regclass('t')::text"), None);
}

// ... and inside a block that failed, where the close's message cannot run and the close
// goes one statement at a time.
fn results_after_an_aborted_block(kind: Kind) {
    let (db, run) = deploy_tested(kind, "close_aborted", "SELECT 1/0;\nCOMMIT;\n", 13);
    assert!(run.stderr.contains("division by zero"), "{}", run.stderr);
    assert_eq!(db.text("SELECT to_regclass('t')::text"), None);
}

both_kinds!(
    one_file_deploy_round_trips,
    results_after_a_closed_deploy,
    results_after_an_open_block,
    results_after_an_aborted_block,
);
