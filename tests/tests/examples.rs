//! The projects under `examples/` deployed for real, checking what each README promises:
//!
//! * `test-gated-deploy`: tests pass, the schema is committed and empty; with the break-it
//!   test the deploy exits 13 and leaves nothing behind;
//! * `execution-order`: files run in sort-key order, one file in two phases; the project's
//!   own gate refuses two files sharing a sort key (exit 13, nothing created);
//! * `lock-safe-deploy`: the head's lock bound, retries after a lock timeout, giving up with
//!   the blocker named, the tail's reaping of an INVALID index, and a failing last tail
//!   statement that keeps what the earlier units committed;
//! * `seed-per-environment`: the seed rows of each env, a second deploy that changes nothing,
//!   a missing or unknown env refused;
//! * `ci-reports`: the JUnit and TAP files, passing and failing.
//!
//! Each example's project is copied from `examples/<name>/project` into a temporary
//! directory (the break-it files are added to the copy, never to the examples).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgmi_tests::{both_kinds, connect, deploy_as, pgmi_upload, Kind, Project, Run, TestDb};

// ---------------------------------------------------------------------------------------
// helpers

fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(name)
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read example dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
}

/// A copy of `examples/<name>/project`.
fn project(name: &str) -> Project {
    let root = example_dir(name).join("project");
    let mut files = Vec::new();
    files_under(&root, &root, &mut files);
    files.sort();
    let mut project = Project::new();
    for rel in files {
        let bytes = std::fs::read(root.join(&rel)).expect("read example file");
        project = project.file(rel.to_str().expect("utf-8 path"), bytes);
    }
    project
}

/// `examples/<name>/break-it/<file>`, as the README says to copy it.
fn break_it(name: &str, file: &str) -> String {
    std::fs::read_to_string(example_dir(name).join("break-it").join(file)).expect("break-it file")
}

fn ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what} failed:\n{}", run.stderr);
}

fn failed(run: &Run, what: &str) {
    assert_eq!(run.code, 13, "{what} should exit 13:\n{}", run.stderr);
}

fn has(run: &Run, text: &str) {
    assert!(
        run.stderr.contains(text),
        "expected {text:?} in:\n{}",
        run.stderr
    );
}

fn truth(db: &TestDb, query: &str) -> bool {
    db.client()
        .query_one(query, &[])
        .expect(query)
        .get::<_, bool>(0)
}

/// Every example has a README, a project with a deploy.sql, and each break-it file is named
/// in its README.
#[test]
fn every_example_is_complete() {
    let names = [
        "test-gated-deploy",
        "execution-order",
        "lock-safe-deploy",
        "seed-per-environment",
        "ci-reports",
    ];
    for name in names {
        let dir = example_dir(name);
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|e| panic!("{name}/README.md: {e}"));
        assert!(
            dir.join("project/deploy.sql").is_file(),
            "{name}: no project/deploy.sql"
        );
        if let Ok(entries) = std::fs::read_dir(dir.join("break-it")) {
            for entry in entries {
                let file = entry.expect("entry").file_name();
                let file = file.to_str().expect("utf-8");
                assert!(
                    readme.contains(&format!("break-it/{file}")),
                    "{name}/README.md does not say how to use break-it/{file}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// test-gated-deploy

fn test_gated(kind: Kind) {
    let db = kind.db("ex_gated");
    let p = project("test-gated-deploy");
    let run = deploy_as(kind, &p, &db.name, &[]);
    ok(&run, "first deploy");
    has(&run, "applied ./schema/001_account.sql");
    has(&run, "applied ./schema/002_transfer.sql");
    has(&run, "Tests: 3 passed, 0 failed (3 run)");
    // committed, and empty: the fixture's rows were rolled back with the tests
    assert_eq!(db.count("SELECT count(*) FROM bank.account"), 0);

    let run = deploy_as(kind, &p, &db.name, &[]);
    ok(&run, "second deploy");
    has(&run, "Tests: 3 passed, 0 failed (3 run)");

    // break it: the failing test stops the deploy, in a fresh database and in this one
    let broken = project("test-gated-deploy").file(
        "__test__/test_transfer_fee.sql",
        break_it("test-gated-deploy", "test_transfer_fee.sql"),
    );
    let fresh = kind.db("ex_gated_broken");
    let run = deploy_as(kind, &broken, &fresh.name, &["--json"]);
    failed(&run, "the break-it deploy");
    has(&run, "Tests: 2 passed, 1 failed (3 run)");
    has(
        &run,
        "FAILED ./__test__/test_transfer_fee.sql: no transfer fee charged: alice has 60.00, expected 59.00",
    );
    let json = run.json();
    assert_eq!(json["executionMode"], "atomic", "{json}");
    assert_eq!(
        json["tests"]["failedTest"], "./__test__/test_transfer_fee.sql",
        "{json}"
    );
    assert!(
        truth(&fresh, "SELECT to_regnamespace('bank') IS NULL"),
        "the failed deploy left the schema behind"
    );

    db.client()
        .batch_execute("INSERT INTO bank.account (owner, balance) VALUES ('carol', 5)")
        .expect("a row of the live database");
    let run = deploy_as(kind, &broken, &db.name, &[]);
    failed(&run, "the break-it deploy over a deployed database");
    assert_eq!(
        db.count("SELECT count(*) FROM bank.account WHERE owner = 'carol'"),
        1
    );
}

// ---------------------------------------------------------------------------------------
// execution-order

fn steps(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("step "))
        .map(str::to_string)
        .collect()
}

fn execution_order(kind: Kind) {
    let expected = [
        "step 1: ./zz_schema.sql (sort key 10-schema)",
        "step 2: ./audit.sql (sort key 15-audit/1-setup)",
        "step 3: ./tables/product.sql (sort key 20-tables/1-product)",
        "step 4: ./tables/price.sql (sort key 20-tables/2-price)",
        "step 5: ./audit.sql (sort key 30-audit/2-attach)",
        "step 6: ./a_catalog.sql (sort key 40-views/catalog)",
    ];
    let db = kind.db("ex_order");
    let p = project("execution-order");
    let run = deploy_as(kind, &p, &db.name, &[]);
    ok(&run, "first deploy");
    assert_eq!(steps(&run), expected, "{}", run.stderr);
    has(&run, "audit: log table and trigger function ready");
    has(&run, "audit: trigger attached to shop.price");
    has(&run, "audit: trigger attached to shop.product");

    // the second phase attached the triggers: a write is audited
    db.client()
        .batch_execute(
            "INSERT INTO shop.product VALUES (1, 'tea');
             INSERT INTO shop.price VALUES (1, 2.50);",
        )
        .expect("write through the triggers");
    assert_eq!(
        db.count("SELECT count(*) FROM shop.audit_log WHERE operation = 'INSERT'"),
        2
    );
    assert_eq!(
        db.text("SELECT amount::text FROM shop.catalog WHERE id = 1")
            .as_deref(),
        Some("2.50")
    );

    let run = deploy_as(kind, &p, &db.name, &[]);
    ok(&run, "second deploy");
    assert_eq!(steps(&run), expected, "{}", run.stderr);
    assert!(!run.stderr.contains("trigger attached"), "{}", run.stderr);

    // break it: two files with one sort key; the gate refuses before any step runs
    let broken = project("execution-order").file(
        "tables/discount.sql",
        break_it("execution-order", "discount.sql"),
    );
    let fresh = kind.db("ex_order_broken");
    let run = deploy_as(kind, &broken, &fresh.name, &[]);
    failed(&run, "the break-it deploy");
    has(
        &run,
        "two files share a plan position: 20-tables/2-price is used by ./tables/discount.sql and ./tables/price.sql",
    );
    has(&run, "HINT: Give each file its own <sortKeys> key");
    assert!(steps(&run).is_empty(), "{}", run.stderr);
    assert!(truth(&fresh, "SELECT to_regnamespace('shop') IS NULL"));
}

/// `metadata plan` shows the same order offline, as the README says.
#[test]
fn execution_order_offline_plan() {
    let p = project("execution-order");
    let run = pgmi_upload(&["metadata", "plan", p.path().to_str().unwrap()], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let order: Vec<&str> = run
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        order,
        [
            "./zz_schema.sql",
            "./audit.sql",
            "./tables/product.sql",
            "./tables/price.sql",
            "./audit.sql",
            "./a_catalog.sql"
        ],
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------
// lock-safe-deploy

fn index_state(db: &TestDb, index: &str) -> Option<bool> {
    db.client()
        .query_opt(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&index],
        )
        .expect("pg_index")
        .map(|r| r.get(0))
}

fn lock_safe_tail(kind: Kind) {
    let db = kind.db("ex_locks");
    let p = project("lock-safe-deploy");

    // the operator's bound wins; without one, the project's own 3 s
    let run = deploy_as(kind, &p, &db.name, &["--lock-timeout", "500ms"]);
    ok(&run, "first deploy");
    has(&run, "head: lock_timeout is 500ms");
    assert_eq!(index_state(&db, "shop.orders_created_at_idx"), Some(true));
    let run = deploy_as(kind, &p, &db.name, &[]);
    ok(&run, "second deploy");
    has(&run, "head: lock_timeout is 3s");

    // an INVALID leftover of a failed concurrent build is dropped and built again
    let mut client = db.client();
    client
        .batch_execute(
            "DROP INDEX shop.orders_created_at_idx;
             INSERT INTO shop.orders (id, customer_id, created_at) VALUES (4, 300, '2026-01-01');",
        )
        .expect("prepare a duplicate");
    assert!(client
        .batch_execute(
            "CREATE UNIQUE INDEX CONCURRENTLY orders_created_at_idx ON shop.orders (created_at)"
        )
        .is_err());
    assert_eq!(index_state(&db, "shop.orders_created_at_idx"), Some(false));
    client
        .batch_execute("DELETE FROM shop.orders WHERE id = 4")
        .expect("delete the duplicate");
    let run = deploy_as(kind, &p, &db.name, &[]);
    ok(&run, "deploy over an invalid index");
    has(
        &run,
        "dropping the invalid index shop.orders_created_at_idx left by an earlier run",
    );
    assert_eq!(index_state(&db, "shop.orders_created_at_idx"), Some(true));
    assert!(truth(
        &db,
        "SELECT NOT indisunique FROM pg_index WHERE indexrelid = 'shop.orders_created_at_idx'::regclass"
    ));

    // break it: the last tail statement fails; the head and earlier tail units stay
    let broken =
        project("lock-safe-deploy").file("deploy.sql", break_it("lock-safe-deploy", "deploy.sql"));
    let fresh = kind.db("ex_locks_broken");
    let run = deploy_as(kind, &broken, &fresh.name, &["--json"]);
    failed(&run, "the break-it deploy");
    let json = run.json();
    assert_eq!(json["sqlstate"], "23505", "{json}");
    assert_eq!(json["executionMode"], "psql", "{json}");
    assert_eq!(json["executionUnits"], 6, "{json}");
    assert_eq!(json["unitsCommitted"], 5, "{json}");
    assert_eq!(fresh.count("SELECT count(*) FROM shop.orders"), 3);
    assert_eq!(
        index_state(&fresh, "shop.orders_created_at_idx"),
        Some(true)
    );
    assert_eq!(
        index_state(&fresh, "shop.orders_one_per_customer"),
        Some(false),
        "the failed build should leave an INVALID index"
    );

    // fix the data as the README says: the leftover is reaped and the index built
    fresh
        .client()
        .batch_execute("DELETE FROM shop.orders WHERE id = 2")
        .expect("fix the data");
    let run = deploy_as(kind, &broken, &fresh.name, &[]);
    ok(&run, "the break-it deploy after fixing the data");
    has(
        &run,
        "dropping the invalid index shop.orders_one_per_customer left by an earlier run",
    );
    assert_eq!(
        index_state(&fresh, "shop.orders_one_per_customer"),
        Some(true)
    );
}

/// Holds a lock on shop.orders in another session, as an application's long transaction
/// would, until `release` says so (or 20 s pass). Returns its backend pid.
fn hold_lock(
    db: &TestDb,
    release: impl Fn(&mut postgres::Client) -> bool + Send + 'static,
) -> (i32, std::thread::JoinHandle<()>) {
    let mut client = db.client();
    let name = db.name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut tr = client.transaction().expect("begin");
        tr.batch_execute("SELECT count(*) FROM shop.orders")
            .expect("take the lock");
        let pid: i32 = tr
            .query_one("SELECT pg_backend_pid()", &[])
            .expect("pid")
            .get(0);
        tx.send(pid).expect("send pid");
        let mut watcher = connect(&name);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) && !release(&mut watcher) {
            std::thread::sleep(Duration::from_millis(10));
        }
        tr.commit().expect("commit the holder");
    });
    (rx.recv().expect("holder pid"), handle)
}

/// Whether a session waits for a lock on shop.orders right now.
fn someone_waits(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                             WHERE NOT granted AND relation = 'shop.orders'::regclass)",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(false)
}

fn lock_safe_retries(kind: Kind) {
    let db = kind.db("ex_locks_retry");
    let p = project("lock-safe-deploy");
    ok(&deploy_as(kind, &p, &db.name, &[]), "first deploy");

    // The holder lets go right after the first attempt gave up: the retry succeeds.
    let seen = Arc::new(AtomicBool::new(false));
    let seen_in_holder = seen.clone();
    let (_, holder) = hold_lock(&db, move |c| {
        let waits = someone_waits(c);
        if waits {
            seen_in_holder.store(true, Ordering::SeqCst);
        }
        seen_in_holder.load(Ordering::SeqCst) && !waits
    });
    let run = deploy_as(
        kind,
        &p,
        &db.name,
        &["--lock-timeout", "300ms", "--retries", "4", "--json"],
    );
    holder.join().expect("holder");
    ok(&run, "deploy with retries");
    assert!(seen.load(Ordering::SeqCst), "the deploy never waited");
    has(
        &run,
        "pgmi: unit 1 of 4 (the atomic head) failed with a lock timeout (SQLSTATE 55P03)",
    );
    has(&run, "nothing of it was committed, retry 1 of 4");
    let attempts = run.json()["attempts"].clone();
    let attempts = attempts.as_array().expect("attempts");
    assert!(!attempts.is_empty());
    assert!(
        attempts
            .iter()
            .all(|a| a["unit"] == 1 && a["sqlstate"] == "55P03"),
        "{attempts:?}"
    );

    // The holder never lets go: the deploy gives up and names it.
    let done = Arc::new(AtomicBool::new(false));
    let done_in_holder = done.clone();
    let (pid, holder) = hold_lock(&db, move |_| done_in_holder.load(Ordering::SeqCst));
    let run = deploy_as(
        kind,
        &p,
        &db.name,
        &["--lock-timeout", "200ms", "--retries", "1", "--json"],
    );
    done.store(true, Ordering::SeqCst);
    holder.join().expect("holder");
    failed(&run, "deploy behind a lock that is never released");
    let json = run.json();
    assert_eq!(json["sqlstate"], "55P03", "{json}");
    assert_eq!(json["executionMode"], "atomic", "{json}");
    assert_eq!(json["attempts"].as_array().map(Vec::len), Some(2), "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("gave up after 2 attempts of this unit"),
        "{json}"
    );
    assert_eq!(json["lockWait"]["relation"], "shop.orders", "{json}");
    assert!(
        json["lockWait"]["blockers"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["pid"] == pid)),
        "the holder (pid {pid}) is not named: {json}"
    );
}

// ---------------------------------------------------------------------------------------
// seed-per-environment

fn seed_notice(run: &Run) -> String {
    run.stderr
        .lines()
        .find(|l| l.starts_with("seed for "))
        .unwrap_or_else(|| panic!("no seed notice in:\n{}", run.stderr))
        .to_string()
}

fn seed_per_environment(kind: Kind) {
    let p = project("seed-per-environment");
    let users = |db: &TestDb| {
        db.text("SELECT string_agg(email, ',' ORDER BY email) FROM app.app_user")
            .unwrap_or_default()
    };

    let dev = kind.db("ex_seed_dev");
    let run = deploy_as(kind, &p, &dev.name, &["--param", "env=dev"]);
    ok(&run, "env=dev");
    has(&run, "environment: dev");
    assert_eq!(
        seed_notice(&run),
        "seed for dev: 3 plan row(s) and 3 user row(s) inserted or updated, 0 removed"
    );
    assert_eq!(dev.count("SELECT count(*) FROM app.plan"), 3);
    assert_eq!(
        users(&dev),
        "ada@dev.example,grace@dev.example,linus@dev.example"
    );

    // idempotent: nothing written the second time
    let run = deploy_as(kind, &p, &dev.name, &["--param", "env=dev"]);
    ok(&run, "env=dev again");
    assert_eq!(
        seed_notice(&run),
        "seed for dev: 0 plan row(s) and 0 user row(s) inserted or updated, 0 removed"
    );

    // an edit of the JSON changes exactly that row
    let seed = std::fs::read_to_string(p.path().join("data/seed.json")).unwrap();
    assert!(seed.contains("\"monthly_price\": 12.50"));
    let edited = project("seed-per-environment").file(
        "data/seed.json",
        seed.replace("\"monthly_price\": 12.50", "\"monthly_price\": 13.00"),
    );
    let run = deploy_as(kind, &edited, &dev.name, &["--param", "env=dev"]);
    ok(&run, "env=dev with an edited price");
    assert_eq!(
        seed_notice(&run),
        "seed for dev: 1 plan row(s) and 0 user row(s) inserted or updated, 0 removed"
    );
    assert_eq!(
        dev.text("SELECT monthly_price::text FROM app.plan WHERE code = 'team'")
            .as_deref(),
        Some("13.00")
    );

    // prod over the dev database: the seeded dev users go, a person's row stays
    dev.client()
        .batch_execute(
            "INSERT INTO app.app_user (email, name, plan_code) VALUES ('real@example.com', 'Real', 'free')",
        )
        .expect("a user created by a person");
    let run = deploy_as(kind, &p, &dev.name, &["--param", "env=prod"]);
    ok(&run, "env=prod over dev");
    assert!(seed_notice(&run).ends_with("3 removed"), "{}", run.stderr);
    assert_eq!(users(&dev), "real@example.com");

    let staging = kind.db("ex_seed_staging");
    ok(
        &deploy_as(kind, &p, &staging.name, &["--param", "env=staging"]),
        "env=staging",
    );
    assert_eq!(users(&staging), "qa@staging.example");
    assert_eq!(staging.count("SELECT count(*) FROM app.plan"), 3);

    // break it: no env, an unknown env; nothing is created
    let none = kind.db("ex_seed_none");
    let run = deploy_as(kind, &p, &none.name, &[]);
    failed(&run, "no env");
    has(&run, "no environment given");
    has(
        &run,
        "HINT: Deploy with --param env=dev, env=staging or env=prod.",
    );
    let run = deploy_as(kind, &p, &none.name, &["--param", "env=qa"]);
    failed(&run, "env=qa");
    has(&run, "unknown environment \"qa\"");
    has(
        &run,
        "HINT: data/seed.json has users for: dev, prod, staging",
    );
    assert!(truth(&none, "SELECT to_regnamespace('app') IS NULL"));
}

// ---------------------------------------------------------------------------------------
// ci-reports

/// (name, failure type) of every `<testcase>` of a JUnit file, in order.
fn junit_cases(xml: &str) -> Vec<(String, Option<String>)> {
    xml.split("<testcase ")
        .skip(1)
        .map(|case| {
            let head = &case[..case.find('>').expect("end of <testcase")];
            let name = attr(head, "name").expect("testcase name");
            let failure = if head.ends_with('/') {
                None
            } else {
                let body = &case[..case.find("</testcase>").expect("</testcase>")];
                body.find("<failure ")
                    .map(|i| attr(&body[i..], "type").expect("failure type"))
            };
            (name, failure)
        })
        .collect()
}

/// The value of attribute `name` in an element's text (` name="…"`).
fn attr(element: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let len = element[start..].find('"')?;
    Some(element[start..start + len].to_string())
}

/// (number, description, ok) of every test line of a TAP stream, and its plan line.
fn tap_lines(tap: &str) -> (String, Vec<(usize, String, bool)>) {
    let mut lines = tap.lines();
    assert_eq!(lines.next(), Some("TAP version 13"), "{tap}");
    let plan = lines.next().expect("plan line").to_string();
    let tests = lines
        .filter_map(|l| {
            let (ok, rest) = if let Some(r) = l.strip_prefix("ok ") {
                (true, r)
            } else {
                (false, l.strip_prefix("not ok ")?)
            };
            let (n, rest) = rest.split_once(" - ")?;
            let desc = rest.split(" # ").next().unwrap_or(rest);
            Some((n.parse().expect("test number"), desc.to_string(), ok))
        })
        .collect();
    (plan, tests)
}

fn ci_reports(kind: Kind) {
    let out = tempfile::tempdir().expect("tempdir");
    let junit = out.path().join("reports/junit.xml");
    let tap = out.path().join("reports/tap.txt");
    let junit_arg = format!("junit={}", junit.display());
    let tap_arg = format!("tap={}", tap.display());
    let args = ["--test-report", &junit_arg, "--test-report", &tap_arg];

    let db = kind.db("ex_reports");
    let run = deploy_as(kind, &project("ci-reports"), &db.name, &args);
    ok(&run, "deploy with reports");
    has(&run, "Tests: 3 passed, 0 failed (3 run)");
    let xml = std::fs::read_to_string(&junit).expect("junit.xml written");
    let suites = &xml[xml.find("<testsuites ").expect("<testsuites")..];
    assert_eq!(attr(suites, "tests").as_deref(), Some("3"), "{xml}");
    assert_eq!(attr(suites, "failures").as_deref(), Some("0"), "{xml}");
    let passed = |n: &str| (n.to_string(), None);
    assert_eq!(
        junit_cases(&xml),
        [
            passed("./__test__/test_gross.sql"),
            passed("./__test__/test_line_total.sql"),
            passed("./__test__/rounding/test_half_up.sql"),
        ],
        "{xml}"
    );
    assert!(xml.contains("classname=\"./__test__/rounding/\""), "{xml}");
    assert!(
        !xml.contains("_setup.sql"),
        "a fixture is not a test: {xml}"
    );
    let text = std::fs::read_to_string(&tap).expect("tap written");
    let (plan, tests) = tap_lines(&text);
    assert_eq!(plan, "1..3", "{text}");
    assert_eq!(
        tests,
        [
            (1, "./__test__/test_gross.sql".to_string(), true),
            (2, "./__test__/test_line_total.sql".to_string(), true),
            (3, "./__test__/rounding/test_half_up.sql".to_string(), true),
        ],
        "{text}"
    );

    // break it: exit 13, and both reports name the failing test
    let broken = project("ci-reports").file(
        "__test__/rounding/test_bankers_rounding.sql",
        break_it("ci-reports", "test_bankers_rounding.sql"),
    );
    let fresh = kind.db("ex_reports_broken");
    let run = deploy_as(kind, &broken, &fresh.name, &args);
    failed(&run, "the break-it deploy");
    assert!(truth(&fresh, "SELECT to_regnamespace('pricing') IS NULL"));
    let xml = std::fs::read_to_string(&junit).expect("junit.xml rewritten");
    let suites = &xml[xml.find("<testsuites ").expect("<testsuites")..];
    assert_eq!(attr(suites, "failures").as_deref(), Some("1"), "{xml}");
    assert_eq!(
        junit_cases(&xml),
        [
            passed("./__test__/test_gross.sql"),
            passed("./__test__/test_line_total.sql"),
            (
                "./__test__/rounding/test_bankers_rounding.sql".to_string(),
                Some("P0001".to_string())
            ),
        ],
        "{xml}"
    );
    assert!(
        xml.contains("should round half to even: expected 1.12, got 1.13"),
        "{xml}"
    );
    assert!(
        xml.contains("DETAIL: banker&apos;s rounding is not implemented")
            || xml.contains("DETAIL: banker's rounding is not implemented"),
        "{xml}"
    );
    let text = std::fs::read_to_string(&tap).expect("tap rewritten");
    let (plan, tests) = tap_lines(&text);
    assert_eq!(plan, "1..3", "{text}");
    assert_eq!(
        tests.last(),
        Some(&(
            3,
            "./__test__/rounding/test_bankers_rounding.sql".to_string(),
            false
        )),
        "{text}"
    );
    assert!(text.contains("    sqlstate: \"P0001\""), "{text}");
    assert!(
        text.contains("    detail: \"banker's rounding is not implemented\""),
        "{text}"
    );
}

both_kinds!(test_gated, execution_order, ci_reports);

// The slower examples run in one session kind each, to keep this file quick: the behaviour
// they show (the client's retries and tail units, SQL over session rows) is the same in both.

#[test]
fn lock_safe_tail_extension() {
    lock_safe_tail(Kind::Extension);
}

/// Retries behind a real lock take a few seconds.
#[test]
fn lock_safe_retries_extension() {
    lock_safe_retries(Kind::Extension);
}

/// The portable session: what a managed PostgreSQL gets.
#[test]
fn seed_per_environment_portable() {
    seed_per_environment(Kind::Portable);
}
