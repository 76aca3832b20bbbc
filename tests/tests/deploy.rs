//! `pgmi-upload deploy` end to end: exit codes, offline validation, parameters, the
//! atomic-head/psql-tail execution model and the deploy lock (README "Exit codes" and
//! "Lock-safe deploys"; docs/cookbook.md, "How `deploy.sql` is executed"), with both session
//! kinds.

use pgmi_tests::{
    both_kinds, connect, deploy_as, deploy_ok_as, pgmi_upload, Kind, Project, Run, TestDb,
};

fn exists(db: &TestDb, relation: &str) -> bool {
    db.text(&format!("SELECT to_regclass('{relation}')::text"))
        .is_some()
}

/// `pgmi-upload deploy <path> -d <db> --session <kind> <extra>` with `env`.
fn deploy_path_as(kind: Kind, path: &str, db: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["deploy", path, "-d", db, "--session", kind.flag()];
    args.extend_from_slice(extra);
    pgmi_upload(&args, env)
}

fn database_exists(name: &str) -> bool {
    connect("postgres")
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .expect("pg_database")
        .is_some()
}

// A trivial deploy into a database that does not exist yet: created (with the
// extension installed for an extension session, untouched for a portable one), no notices
// at all, one execution unit.
fn trivial_deploy_creates_the_database_and_is_silent(kind: Kind) {
    let db = TestDb::unnamed("trivial");
    let project = Project::with_deploy("SELECT 1;");
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["status"], "success");
    assert_eq!(json["exitCode"], 0);
    assert_eq!(json["filesLoaded"], 0);
    assert_eq!(json["executionUnits"], 1);
    assert_eq!(json["unitsCommitted"], 1);
    assert_eq!(json["database"], db.name.as_str());
    assert_eq!(json["session"], kind.flag());
    // Where the time went, phase by phase; together no more than the whole deploy.
    let phases = json["phasesMs"].as_object().expect("phasesMs");
    for phase in [
        "config",
        "scan",
        "check",
        "connect",
        "session",
        "load",
        "deploy.sql",
        "close",
    ] {
        assert!(
            phases[phase].as_f64().is_some_and(|ms| ms >= 0.0),
            "{phase}: {json}"
        );
    }
    for only_extension in ["pack", "upload"] {
        assert_eq!(
            phases.contains_key(only_extension),
            kind == Kind::Extension,
            "{json}"
        );
    }
    let total: f64 = phases.values().filter_map(serde_json::Value::as_f64).sum();
    // durationMs is whole milliseconds, cut down (up to 1 ms less); each phase is rounded
    // to 0.1 ms (up to 0.05 more each).
    assert!(
        total <= json["durationMs"].as_f64().unwrap() + 1.0 + 0.05 * phases.len() as f64,
        "{json}"
    );
    let (session_line, installs) = match kind {
        Kind::Extension => (
            "Session: extension (installed the pgmi extension in schema \"public\")",
            true,
        ),
        Kind::Portable => ("Session: portable (--session portable)", false),
    };
    assert_eq!(
        run.stderr.lines().filter(|l| *l == session_line).count(),
        1,
        "{}",
        run.stderr
    );
    let unexpected: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| {
            !(l.starts_with("Database \"")
                || (installs && *l == "Installing extension pgmi")
                || l.starts_with("Preparing session")
                || *l == session_line
                || l.starts_with("Loaded ")
                || l.starts_with("Executing deploy.sql"))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected stderr lines (notices?): {unexpected:?}"
    );
    assert!(database_exists(&db.name));
    assert_eq!(
        db.count("SELECT count(*) FROM pg_extension WHERE extname = 'pgmi'"),
        i64::from(installs)
    );
}

fn assert_rejected_offline(
    kind: Kind,
    project: &Project,
    code: i32,
    needle: &str,
    env: &[(&str, &str)],
) -> String {
    let db = TestDb::unnamed("offline");
    let path = project.path().to_str().expect("path");
    let run = deploy_path_as(kind, path, &db.name, &[], env);
    assert_eq!(run.code, code, "{}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?} in:\n{}",
        run.stderr
    );
    assert!(
        !database_exists(&db.name),
        "nothing may be touched before validation passes"
    );
    run.stderr
}

// A NUL byte and invalid UTF-8 (exit 10 here where the original pgmi exits 1, a deliberate
// difference: scan errors are configuration errors), unsupported dunder directories, and
// deploy.sql missing (14).
fn bad_project_files_are_rejected_before_connecting(kind: Kind) {
    let stderr = assert_rejected_offline(
        kind,
        &Project::with_deploy("SELECT 1;").file("data/blob.bin", b"ab\x00cd"),
        10,
        "./data/blob.bin",
        &[],
    );
    assert_eq!(
        stderr.matches("./data/blob.bin").count(),
        1,
        "name the file once:\n{stderr}"
    );
    assert_rejected_offline(
        kind,
        &Project::with_deploy("SELECT 1;").file("latin.sql", b"\xff\xfe"),
        10,
        "is not valid UTF-8",
        &[],
    );
    assert_rejected_offline(
        kind,
        &Project::with_deploy("SELECT 1;").file("__init__/x.py", "x"),
        10,
        "unsupported directory \"__init__\"",
        &[],
    );
    assert_rejected_offline(
        kind,
        &Project::with_deploy("SELECT 1;").file("__Test__/t.sql", "SELECT 1;"),
        10,
        "__Test__",
        &[],
    );
    assert_rejected_offline(
        kind,
        &Project::new().file("a.sql", "SELECT 1;"),
        14,
        "deploy.sql",
        &[],
    );
}

// A symlink is refused; one inside an excluded tree is never looked at.
fn symlinks_are_refused_unless_excluded(kind: Kind) {
    let project = Project::with_deploy("SELECT 1;").file("real.sql", "SELECT 1;");
    std::os::unix::fs::symlink(
        project.path().join("real.sql"),
        project.path().join("link.sql"),
    )
    .expect("symlink");
    assert_rejected_offline(kind, &project, 10, "refusing to read symlink", &[]);

    let db = TestDb::unnamed("symlink_ok");
    let project = Project::with_deploy("SELECT 1;").file("node_modules/real.js", "x");
    std::os::unix::fs::symlink("real.js", project.path().join("node_modules/link.js"))
        .expect("symlink");
    deploy_ok_as(kind, &project, &db.name, &[]);
}

// The 10 MiB per-file cap, and PGMI_MAX_FILE_SIZE raising it on both sides.
fn file_size_cap_and_override(kind: Kind) {
    let big = vec![b'x'; 10 * 1024 * 1024 + 1];
    let project = Project::with_deploy(
        "CREATE TABLE big AS SELECT size_bytes FROM pgmi_source_view WHERE path = './big.txt';",
    )
    .file("big.txt", &big);
    assert_rejected_offline(kind, &project, 10, "./big.txt", &[]);

    let db = TestDb::unnamed("bigfile");
    let path = project.path().to_str().expect("path");
    let run = deploy_path_as(
        kind,
        path,
        &db.name,
        &[],
        &[("PGMI_MAX_FILE_SIZE", "20000000")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(db.count("SELECT size_bytes FROM big"), 10 * 1024 * 1024 + 1);
}

// Parameters reach pgmi.<key> settings and the view, exactly.
fn parameters_round_trip(kind: Kind) {
    let db = TestDb::unnamed("params");
    let project = Project::with_deploy(
        "CREATE TABLE p AS SELECT key, value, type, required FROM pgmi_parameter_view;\n\
         CREATE TABLE s AS SELECT current_setting('pgmi.myparam') AS lower_name,\n\
                                  current_setting('pgmi.MyParam', true) AS mixed_name,\n\
                                  current_setting('pgmi.nonexistent', true) AS missing,\n\
                                  current_setting('pgmi.json') AS json,\n\
                                  current_setting('pgmi.multi') AS multi,\n\
                                  current_setting('pgmi.empty') AS empty;\n",
    );
    let run = deploy_as(
        kind,
        &project,
        &db.name,
        &[
            "--param",
            "MyParam=value1",
            "--param",
            "json={\"a\": [1, \"&\"]}",
            "--param",
            "multi=line one\nline two ünïcødé",
            "--param",
            "empty=",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Loaded 4 parameters"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("value1"),
        "parameter values are never printed"
    );
    let mut c = db.client();
    let s = c
        .query_one(
            "SELECT lower_name, mixed_name, missing, json, multi, empty FROM s",
            &[],
        )
        .expect("s");
    assert_eq!(s.get::<_, String>(0), "value1");
    assert_eq!(s.get::<_, Option<String>>(1).as_deref(), Some("value1"));
    assert_eq!(s.get::<_, Option<String>>(2), None);
    assert_eq!(s.get::<_, String>(3), "{\"a\": [1, \"&\"]}");
    assert_eq!(s.get::<_, String>(4), "line one\nline two ünïcødé");
    assert_eq!(s.get::<_, String>(5), "");
    let row = c
        .query_one("SELECT type, required FROM p WHERE key = 'myparam'", &[])
        .expect("p");
    assert_eq!(row.get::<_, String>(0), "text");
    assert!(!row.get::<_, bool>(1));
}

// Key rules, checked before connecting.
fn parameter_keys_are_validated_offline(kind: Kind) {
    let project = Project::with_deploy("SELECT 1;");
    let path = project.path().to_str().expect("path");
    let long = "k".repeat(64);
    for key in ["1abc", "bad-key", long.as_str()] {
        let db = TestDb::unnamed("badkey");
        let arg = format!("{key}=v");
        let run = deploy_path_as(kind, path, &db.name, &["--param", &arg], &[]);
        assert_eq!(run.code, 10, "{key}: {}", run.stderr);
        assert!(
            run.stderr.contains(key),
            "error names the key {key}:\n{}",
            run.stderr
        );
        assert!(!database_exists(&db.name));
    }
    let db = TestDb::unnamed("goodkey");
    let ok = format!("{}=v", "k".repeat(63));
    deploy_ok_as(
        kind,
        &project,
        &db.name,
        &["--param", &ok, "--param", "_private=v"],
    );
}

// Parameters are session-scoped and survive a rolled-back head.
fn parameters_survive_a_rolled_back_head(kind: Kind) {
    let db = TestDb::unnamed("param_scope");
    let project = Project::with_deploy(
        "BEGIN;\nCREATE TABLE gone (id int);\nROLLBACK;\nCREATE TABLE kept AS SELECT current_setting('pgmi.env') AS env;\n",
    );
    deploy_ok_as(kind, &project, &db.name, &["--param", "env=prod"]);
    assert!(!exists(&db, "gone"));
    assert_eq!(db.text("SELECT env FROM kept").as_deref(), Some("prod"));
}

// Three units, CREATE INDEX CONCURRENTLY in the tail.
fn tail_statements_run_one_by_one(kind: Kind) {
    let db = TestDb::unnamed("tail");
    let project = Project::with_deploy(
        "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\nANALYZE t;\n",
    );
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["executionUnits"], 3);
    assert_eq!(
        db.text("SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'i'::regclass")
            .as_deref(),
        Some("true")
    );
}

// A tail failure keeps what earlier units committed.
fn tail_failure_keeps_committed_units(kind: Kind) {
    let db = TestDb::unnamed("tailfail");
    let project = Project::with_deploy(
        "BEGIN; CREATE TABLE head_t(id int); COMMIT; CREATE TABLE tail_before(id int); BEGIN; INSERT INTO tail_before VALUES (1); SELECT 1/0; COMMIT;",
    );
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["executionMode"], "psql");
    assert_eq!(json["sqlstate"], "22012");
    assert!(exists(&db, "head_t") && exists(&db, "tail_before"));
    assert_eq!(db.count("SELECT count(*) FROM tail_before"), 0);
}

// A head failure rolls everything in the head back (executionMode atomic), and the
// error points at the line.
fn head_failure_is_atomic_and_located(kind: Kind) {
    let db = TestDb::unnamed("headfail");
    let project = Project::with_deploy("CREATE TABLE a (id int);\nSELEC 1;\n");
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["executionMode"], "atomic");
    assert_eq!(json["sqlstate"], "42601");
    assert_eq!(json["line"], 2);
    assert_eq!(json["sourceLine"], "SELEC 1;");
    assert!(!exists(&db, "a"));
}

// At the CLI level: a savepoint rollback is not a terminator.
fn rollback_to_savepoint_keeps_one_unit(kind: Kind) {
    let db = TestDb::unnamed("savepoint");
    let project = Project::with_deploy(
        "BEGIN; CREATE TABLE a (id int); SAVEPOINT s; CREATE TABLE b (id int); ROLLBACK TO SAVEPOINT s; COMMIT;",
    );
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["executionUnits"], 1);
    assert!(exists(&db, "a") && !exists(&db, "b"));
}

// An explicit transaction left open is rolled back at the end.
fn uncommitted_transaction_is_rolled_back(kind: Kind) {
    let db = TestDb::unnamed("open_tx");
    let project = Project::with_deploy("BEGIN; CREATE TABLE t(id int);");
    let run = deploy_as(kind, &project, &db.name, &["--json"]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("ended inside an open transaction; it was rolled back"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()["exitCode"], 13);
    assert!(!exists(&db, "t"));
    // Ending with an explicit ROLLBACK is a choice, not an accident.
    let project = Project::with_deploy("BEGIN; CREATE TABLE t(id int); ROLLBACK;");
    deploy_ok_as(kind, &project, &db.name, &[]);
    assert!(!exists(&db, "t"));
}

// The session advisory lock serialises deploys per database only.
fn concurrent_deploys_to_one_database_are_refused(kind: Kind) {
    let db = kind.db("lock");
    let other = TestDb::unnamed("lock_other");
    let project = Project::with_deploy("SELECT 1;");
    let mut holder = db.client();
    let got: bool = holder
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('pgmi.deploy.' || current_database(), 0))",
            &[],
        )
        .expect("lock")
        .get(0);
    assert!(got);
    let run = deploy_as(kind, &project, &db.name, &[]);
    assert_eq!(run.code, 15, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "another pgmi deployment is already running against \"{}\"",
            db.name
        )),
        "{}",
        run.stderr
    );
    deploy_ok_as(kind, &project, &other.name, &[]);
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .expect("unlock");
    deploy_ok_as(kind, &project, &db.name, &[]);
    // and right after a deploy finishes, the next one is not blocked
    deploy_ok_as(kind, &project, &db.name, &[]);
}

// The demo project shipped in examples/ deploys, and a second deploy applies nothing new.
fn demo_project_deploys_twice(kind: Kind) {
    let db = TestDb::unnamed("demo");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let demo = demo.to_str().expect("path");
    let first = deploy_path_as(kind, demo, &db.name, &["--param", "greeting=hi"], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("3 migration(s) applied"),
        "{}",
        first.stderr
    );
    let second = deploy_path_as(kind, demo, &db.name, &[], &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("0 migration(s) applied"),
        "{}",
        second.stderr
    );
    assert_eq!(
        db.text("SELECT demo.greet('fr')").as_deref(),
        Some("Bonjour")
    );
}

// --verbose shows the load's own timing line (the extension's pgmi_load, or the client's
// for a portable session) and deploy.sql's DEBUG messages, but not the server's
// housekeeping while the session is prepared (index builds of the session tables, the
// upload table's COPY and drop).
fn verbose_load_output_is_the_timing_line_not_housekeeping(kind: Kind) {
    let db = TestDb::unnamed("verbose_load");
    let project = Project::with_deploy(
        "DO $$ BEGIN RAISE DEBUG 'deploy debug line'; END $$;\nSELECT count(*) FROM pgmi_source_view;\n",
    )
    .file("migrations/001.sql", "SELECT 1;");
    let run = deploy_ok_as(kind, &project, &db.name, &["--verbose"]);
    let (timing, done) = match kind {
        Kind::Extension => ("pgmi_load: 1 files", "done in"),
        Kind::Portable => ("[VERBOSE] portable session: 1 files", "loaded in"),
    };
    let load_line = run
        .stderr
        .lines()
        .find(|l| l.contains(timing))
        .unwrap_or_else(|| panic!("no timing line:\n{}", run.stderr));
    assert!(load_line.contains(done), "{load_line}");
    assert!(run.stderr.contains("deploy debug line"), "{}", run.stderr);
    for noise in ["_pgmi_source_pkey", "_pgmi_upload", "auto-cascades"] {
        assert!(
            !run.stderr.contains(noise),
            "{noise} in the verbose output:\n{}",
            run.stderr
        );
    }
}

/// The session raises `temp_buffers` to at least 8MB for its temporary tables, and keeps a
/// larger value that the database (or role) sets.
fn temp_buffers_are_raised_never_lowered(kind: Kind) {
    let db = kind.db("temp_buffers");
    let project = Project::with_deploy(
        "DO $$ BEGIN RAISE NOTICE 'temp_buffers=%', pg_catalog.current_setting('temp_buffers'); END $$;\n",
    );
    for (set, seen) in [("1MB", "8MB"), ("64MB", "64MB")] {
        pgmi_tests::connect("postgres")
            .batch_execute(&format!(
                "ALTER DATABASE {} SET temp_buffers = '{set}'",
                db.name
            ))
            .expect("ALTER DATABASE");
        let run = deploy_ok_as(kind, &project, &db.name, &[]);
        assert!(
            run.stderr.contains(&format!("temp_buffers={seen}")),
            "{set}: {}",
            run.stderr
        );
    }
}

both_kinds!(
    temp_buffers_are_raised_never_lowered,
    trivial_deploy_creates_the_database_and_is_silent,
    bad_project_files_are_rejected_before_connecting,
    symlinks_are_refused_unless_excluded,
    file_size_cap_and_override,
    parameters_round_trip,
    parameter_keys_are_validated_offline,
    parameters_survive_a_rolled_back_head,
    tail_statements_run_one_by_one,
    tail_failure_keeps_committed_units,
    head_failure_is_atomic_and_located,
    rollback_to_savepoint_keeps_one_unit,
    uncommitted_transaction_is_rolled_back,
    concurrent_deploys_to_one_database_are_refused,
    demo_project_deploys_twice,
    verbose_load_output_is_the_timing_line_not_housekeeping,
);

/// `RAISE … USING DETAIL = '', HINT = ''` carries empty fields; they are not printed as
/// bare `DETAIL: ` and `HINT: ` lines (nor put in `--json`).
#[test]
fn empty_detail_and_hint_are_not_printed() {
    let db = TestDb::unnamed("empty_detail");
    let project = Project::with_deploy(
        "DO $$ BEGIN RAISE EXCEPTION 'stop here' USING DETAIL = '', HINT = ''; END $$;\n",
    );
    let run = pgmi_tests::deploy(&project, &db.name, &[]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert!(run.stderr.contains("stop here"), "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(
            !line.starts_with("DETAIL:") && !line.starts_with("HINT:"),
            "{line:?} in:\n{}",
            run.stderr
        );
    }
}
