//! Hostile bundles against a live server: every one fails within a second with its own
//! SQLSTATE and message, the previous session survives, and a load can be stopped at any
//! point (statement_timeout, pg_cancel_backend, pg_terminate_backend) within a second,
//! also while the backend has nothing to insert yet.

use std::time::{Duration, Instant};

use pgmi_core::bundle;
use pgmi_core::limits::{MAX_HEADER_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH};
use pgmi_core::project::RawFile;
use pgmi_tests::bundles::{good as good_bundle, gzip, lying_header};
use pgmi_tests::{deploy, Client, Project, TestDb};

const SECOND: Duration = Duration::from_secs(1);

fn file(path: &str, text: &str) -> RawFile {
    RawFile {
        path: path.to_string(),
        bytes: text.as_bytes().to_vec(),
    }
}

/// A bundle of one file at `path`; long names are written as GNU long-name entries, as
/// GNU tar does (`bundle::write` refuses paths over the caps, so this uses the tar crate).
fn one_file(path: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(9);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, &b"SELECT 1;"[..])
        .expect("append");
    gzip(&b.into_inner().expect("tar"))
}

/// Loads a good bundle, then `bad`; returns SQLSTATE and message of the failure, and
/// checks the time it took, the hint and that the good session survived.
fn refused(c: &mut Client, bad: &[u8]) -> (String, String) {
    c.query("SELECT * FROM pgmi_load($1)", &[&good_bundle()])
        .expect("good load");
    let started = Instant::now();
    let err = c
        .query("SELECT * FROM pgmi_load($1)", &[&bad])
        .expect_err("a hostile bundle must fail");
    let elapsed = started.elapsed();
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    let out = (db.code().code().to_string(), db.message().to_string());
    eprintln!("{elapsed:?}: {} {}", out.0, out.1);
    assert!(elapsed < SECOND, "took {elapsed:?}: {out:?}");
    assert!(
        db.hint().is_some(),
        "every loader error has a hint: {out:?}"
    );
    let paths: Vec<String> = c
        .query("SELECT path FROM pgmi_source_view", &[])
        .expect("view")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(paths, ["./keep.sql"], "the previous load must survive");
    out
}

#[test]
fn deep_and_long_paths_fail_at_once_tests_included() {
    let db = TestDb::new("hostile_paths");
    let mut c = db.client();

    // One test file 100,000 directories deep: 1.9 s (release) to 116 s (debug) before the
    // caps; now its 200 kB long name is refused before it is read.
    let deep = format!("__test__/{}t.sql", "d/".repeat(100_000));
    let (code, msg) = refused(&mut c, &one_file(&deep));
    assert_eq!(code, "54000", "{msg}");
    assert!(
        msg.contains("GNU long-name header of 200015 bytes"),
        "{msg}"
    );

    // 20,000 deep: the name fits in a header, the path is over the length cap.
    let deep = format!("__test__/{}t.sql", "d/".repeat(20_000));
    let (code, msg) = refused(&mut c, &one_file(&deep));
    assert_eq!(code, "54000", "{msg}");
    assert!(
        msg.contains(&format!("pgmi accepts at most {MAX_PATH_BYTES}")),
        "{msg}"
    );
    assert!(msg.len() < 400, "the path is abbreviated: {msg}");

    // Just over the depth cap, as a test and as a source.
    for prefix in ["__test__/", ""] {
        let deep = format!("{prefix}{}t.sql", "d/".repeat(MAX_PATH_DEPTH + 1));
        let (code, msg) = refused(&mut c, &one_file(&deep));
        assert_eq!(code, "54000", "{msg}");
        assert!(msg.contains("directories deep"), "{msg}");
    }

    // A long flat name.
    let long = format!("{}.sql", "n".repeat(MAX_PATH_BYTES));
    let (code, msg) = refused(&mut c, &one_file(&long));
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("bytes long"), "{msg}");

    // At the depth cap a test still loads.
    let ok = format!("__test__/{}t.sql", "d/".repeat(MAX_PATH_DEPTH - 1));
    c.query("SELECT * FROM pgmi_load($1)", &[&one_file(&ok)])
        .expect("a test at the depth cap loads");
}

#[test]
fn huge_archive_headers_are_refused_before_allocation() {
    let db = TestDb::new("hostile_headers");
    let mut c = db.client();
    // Every size limit at its ceiling: only the header cap stands between these and a
    // gigabyte allocation.
    c.batch_execute(
        "SET pgmi_loader.max_file_size = '1GB'; SET pgmi_loader.max_unpacked_size = '1GB'",
    )
    .expect("set");
    for (kind, size, what) in [
        (tar::EntryType::GNULongName, 1 << 30, "GNU long-name"),
        (tar::EntryType::GNULongName, (1 << 33) - 1, "GNU long-name"),
        (tar::EntryType::GNULongLink, 1 << 30, "GNU long-link"),
        (
            tar::EntryType::XHeader,
            MAX_HEADER_BYTES + 1,
            "PAX extended",
        ),
    ] {
        let (code, msg) = refused(&mut c, &lying_header(kind, size));
        assert_eq!(code, "54000", "{msg}");
        assert!(
            msg.contains(&format!("{what} header of {size} bytes")),
            "{msg}"
        );
    }
}

/// `n` test files of 1 MB each: nothing is inserted before the end of the bundle, so the
/// backend only waits for the helper threads all along. ~2 MB compressed.
fn tests_only(n: usize) -> Vec<u8> {
    let text = format!("SELECT 1; -- {}\n", "t".repeat(1000)).repeat(1000);
    let files: Vec<RawFile> = (0..n)
        .map(|i| file(&format!("__tests__/t{i:04}.sql"), &text))
        .collect();
    bundle::write(&files, &[]).expect("bundle")
}

fn sqlstate(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{}: {}", d.code().code(), d.message()))
        .unwrap_or_else(|| e.to_string())
}

#[test]
fn statement_timeout_stops_a_tests_only_load_within_a_second() {
    let db = TestDb::new("hostile_timeout");
    let mut c = db.client();
    let bundle = tests_only(900);
    c.batch_execute("SET statement_timeout = '300ms'")
        .expect("set");
    let started = Instant::now();
    let err = c
        .query("SELECT * FROM pgmi_load($1)", &[&bundle])
        .expect_err("the timeout must stop the load");
    let elapsed = started.elapsed();
    eprintln!("statement_timeout = 300ms: stopped after {elapsed:?}");
    assert!(sqlstate(&err).starts_with("57014"), "{}", sqlstate(&err));
    assert!(elapsed < SECOND, "{elapsed:?}");
    // The session is usable at once.
    c.batch_execute("RESET statement_timeout").expect("reset");
    c.query("SELECT * FROM pgmi_load($1)", &[&good_bundle()])
        .expect("the next load works");
}

/// Starts a tests-only load on its own connection; returns the backend pid and the
/// thread that waits for the load's outcome.
fn load_in_background(db: &TestDb) -> (i32, std::thread::JoinHandle<Result<(), postgres::Error>>) {
    let bundle = tests_only(900);
    let mut loader = db.client();
    let pid: i32 = loader
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let handle = std::thread::spawn(move || {
        loader
            .query("SELECT * FROM pgmi_load($1)", &[&bundle])
            .map(|_| ())
    });
    // Wait until the load is running, then a little more so it is deep inside.
    let mut watcher = db.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running: bool = watcher
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity \
                  WHERE pid = $1 AND state = 'active' AND query LIKE '%pgmi_load%')",
                &[&pid],
            )
            .expect("pg_stat_activity")
            .get(0);
        if running {
            break;
        }
        assert!(Instant::now() < deadline, "the load never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    (pid, handle)
}

#[test]
fn pg_cancel_backend_stops_a_load_within_a_second() {
    let db = TestDb::new("hostile_cancel");
    let (pid, handle) = load_in_background(&db);
    let started = Instant::now();
    db.client()
        .query_one("SELECT pg_catalog.pg_cancel_backend($1)", &[&pid])
        .expect("cancel");
    let outcome = handle.join().expect("thread");
    let elapsed = started.elapsed();
    eprintln!("pg_cancel_backend: stopped after {elapsed:?}");
    let err = outcome.expect_err("the cancel must stop the load");
    assert!(sqlstate(&err).starts_with("57014"), "{}", sqlstate(&err));
    assert!(elapsed < SECOND, "{elapsed:?}");
}

#[test]
fn pg_terminate_backend_ends_a_load_within_a_second_without_a_crash() {
    let db = TestDb::new("hostile_terminate");
    // A bystander session: a crashed backend would make the server restart and drop it.
    let mut bystander = db.client();
    let (pid, handle) = load_in_background(&db);
    let started = Instant::now();
    db.client()
        .query_one("SELECT pg_catalog.pg_terminate_backend($1)", &[&pid])
        .expect("terminate");
    let outcome = handle.join().expect("thread");
    let elapsed = started.elapsed();
    eprintln!("pg_terminate_backend: connection ended after {elapsed:?}");
    let err = outcome.expect_err("the terminate must end the load");
    let text = sqlstate(&err);
    assert!(
        text.starts_with("57P01") || err.is_closed() || text.contains("closed"),
        "{text}"
    );
    assert!(elapsed < SECOND, "{elapsed:?}");
    // The backend is gone within the second, and no other session was disturbed.
    let deadline = Instant::now() + SECOND;
    while bystander
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity WHERE pid = $1)",
            &[&pid],
        )
        .expect("the bystander's connection survives")
        .get::<_, bool>(0)
    {
        assert!(Instant::now() < deadline, "the terminated backend lingers");
        std::thread::sleep(Duration::from_millis(10));
    }
    bystander
        .query("SELECT * FROM pgmi_load($1)", &[&good_bundle()])
        .expect("the server still loads");
}

#[test]
fn pgmi_upload_refuses_a_too_deep_test_tree_before_connecting() {
    let db = TestDb::unnamed("hostile_upload");
    let deep = format!("__test__/{}t.sql", "d/".repeat(MAX_PATH_DEPTH));
    let project = Project::with_deploy("SELECT 1;").file(&deep, "SELECT 1;");
    let started = Instant::now();
    let run = deploy(&project, &db.name, &[]);
    assert!(started.elapsed() < SECOND * 5, "{:?}", started.elapsed());
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("directories deep"), "{}", run.stderr);
}
