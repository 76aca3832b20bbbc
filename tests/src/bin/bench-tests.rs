//! Test-runner benchmark (issue: test-gated deploys, "Measured"): the per-test overhead of
//! `CALL pgmi_test()` over running the same statements in one plain PL/pgSQL loop, measured
//! in the same run on the same connection.
//!
//! 1,000 trivial tests (`SELECT 1`) in 50 directories, each directory with a fixture. Run
//! through `scripts/bench.sh` (release build of the extension), once per session kind
//! (the extension's procedure, the portable session's PL/pgSQL one). Prints a table.

use std::time::{Duration, Instant};

use pgmi_core::project::RawFile;
use pgmi_tests::{Client, Kind};

const ROUNDS: usize = 7;
const DIRECTORIES: usize = 50;
const TESTS_PER_DIRECTORY: usize = 20;

fn project() -> Vec<RawFile> {
    let mut files = Vec::new();
    for d in 0..DIRECTORIES {
        files.push(RawFile {
            path: format!("__test__/d{d:02}/_setup.sql"),
            bytes: b"SELECT 1;".to_vec(),
        });
        for t in 0..TESTS_PER_DIRECTORY {
            files.push(RawFile {
                path: format!("__test__/d{d:02}/test_{t:02}.sql"),
                bytes: b"SELECT 1;".to_vec(),
            });
        }
    }
    files
}

fn time(c: &mut Client, sql: &str) -> Duration {
    let start = Instant::now();
    c.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let tests = DIRECTORIES * TESTS_PER_DIRECTORY;
    println!("pgmi_test benchmark: {tests} tests (SELECT 1) in {DIRECTORIES} directories with fixtures; median of {ROUNDS}");
    println!(
        "{:<11} {:<44} {:>10} {:>22}",
        "session", "case", "total ms", "overhead per test µs"
    );
    for kind in [Kind::Extension, Kind::Portable] {
        run(kind, tests);
    }
}

fn run(kind: Kind, tests: usize) {
    let db = kind.db("bench_tests");
    // Notices are received and counted, as pgmi-upload prints them.
    let notices = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = notices.clone();
    let mut c = pgmi_tests::config(&db.name)
        .notice_callback(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .connect(postgres::NoTls)
        .expect("connect");
    let files = project();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_str(), f.bytes.as_slice()))
        .collect();
    kind.load(&mut c, &files);
    c.batch_execute(
        "CREATE FUNCTION pg_temp.noop(e pg_temp.pgmi_test_event) RETURNS void LANGUAGE sql AS ''",
    )
    .expect("noop callback");

    let baseline_sql =
        format!("DO $$ BEGIN FOR i IN 1..{tests} LOOP EXECUTE 'SELECT 1'; END LOOP; END $$");
    let cases = [
        ("plain PL/pgSQL loop (baseline)", baseline_sql.as_str()),
        (
            "CALL pg_temp.pgmi_test() (default callback)",
            "CALL pg_temp.pgmi_test()",
        ),
        (
            "CALL pg_temp.pgmi_test(NULL, 'pg_temp.noop')",
            "CALL pg_temp.pgmi_test(NULL, 'pg_temp.noop')",
        ),
    ];
    let mut results = Vec::new();
    for (name, sql) in cases {
        time(&mut c, sql); // warm-up: plans, catalog caches
        let runs: Vec<Duration> = (0..ROUNDS).map(|_| time(&mut c, sql)).collect();
        results.push((name, median(runs)));
    }
    let baseline = results[0].1;
    for (name, total) in &results {
        let overhead = (total.as_secs_f64() - baseline.as_secs_f64()) * 1e6 / tests as f64;
        println!(
            "{:<11} {:<44} {:>10.1} {:>22.1}",
            kind.flag(),
            name,
            total.as_secs_f64() * 1e3,
            overhead
        );
    }
    println!(
        "{:<11} notices received: {} (the default callback's NOTICE lines over all runs)",
        kind.flag(),
        notices.load(std::sync::atomic::Ordering::Relaxed)
    );
}
