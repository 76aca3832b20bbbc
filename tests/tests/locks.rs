//! Lock-safe deploys against the real server (README, "Lock-safe deploys"): `--lock-timeout`
//! and `--retries` with a second session holding the table the head alters, a deliberate
//! deadlock, tail retries, `lock_timeout` in pgmi.yaml, and PgBouncer in transaction mode
//! (refused, exit 11) and session mode (works).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pgmi_tests::{deploy, pgmi_upload, Client, Project, Run, TestDb};

const ALTER_HEAD: &str = "BEGIN;\nALTER TABLE orders ADD COLUMN note text;\nCOMMIT;\n";

/// A database with `orders(id int)` holding one row.
fn orders_db(label: &str) -> TestDb {
    let db = TestDb::new(label);
    db.client()
        .batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
        .expect("create orders");
    db
}

/// Another application's session, idle in a transaction that read `orders`: its
/// AccessShareLock blocks the head's ALTER TABLE. Returns the client and its pid.
fn holder(db: &TestDb) -> (Client, i32) {
    let mut client = db.client();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    // Three messages, so the last query pg_stat_activity shows is the SELECT.
    for sql in [
        "SET application_name = 'billing-worker'",
        "BEGIN",
        "SELECT * FROM orders WHERE id = 1 AND 'card 4242' <> ''",
    ] {
        client.batch_execute(sql).expect("hold a lock on orders");
    }
    (client, pid)
}

fn has_note_column(db: &TestDb) -> bool {
    db.count(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'orders' AND column_name = 'note'",
    ) == 1
}

fn attempts(run: &Run) -> Vec<serde_json::Value> {
    run.json()["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_head_that_timed_out_on_a_lock_succeeds_on_a_retry_once_the_holder_commits() {
    let db = orders_db("lock_retry");
    let project = Project::with_deploy(ALTER_HEAD);
    let (mut client, pid) = holder(&db);
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1000));
        client.batch_execute("COMMIT").expect("commit the holder");
    });
    let run = deploy(
        &project,
        &db.name,
        &["--lock-timeout", "200ms", "--retries", "3", "--json"],
    );
    release.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tries = attempts(&run);
    assert!(
        !tries.is_empty(),
        "no attempt was recorded:\n{}",
        run.stdout
    );
    for attempt in &tries {
        assert_eq!(attempt["unit"], 1);
        assert_eq!(attempt["sqlstate"], "55P03");
        assert!(attempt["waitMs"].as_u64().is_some(), "{attempt}");
    }
    // Each retry is announced on stderr, naming the holder.
    let announced = format!("held by pid {pid} (app billing-worker");
    assert!(run.stderr.contains(&announced), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("unit 1 of 1 (the atomic head) failed with a lock timeout (SQLSTATE 55P03)"),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("nothing of it was committed, retry 1 of 3"));
    assert!(has_note_column(&db));
}

#[test]
fn a_holder_that_never_lets_go_fails_the_deploy_after_the_last_attempt_and_is_named() {
    let db = orders_db("lock_giveup");
    let project = Project::with_deploy(ALTER_HEAD);
    let (_client, pid) = holder(&db);
    let run = deploy(
        &project,
        &db.name,
        &["--lock-timeout", "200ms", "--retries", "3", "--json"],
    );
    assert_eq!(run.code, 13, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["sqlstate"], "55P03");
    assert_eq!(json["executionMode"], "atomic");
    let tries = attempts(&run);
    assert_eq!(tries.len(), 4, "{tries:?}");
    assert!(tries[..3].iter().all(|a| a["waitMs"].as_u64().is_some()));
    assert!(tries[3].get("waitMs").is_none(), "{:?}", tries[3]);
    let wait = &json["lockWait"];
    assert_eq!(wait["mode"], "AccessExclusiveLock");
    assert_eq!(wait["relation"], "public.orders");
    assert_eq!(wait["blockers"][0]["pid"], pid);
    assert_eq!(wait["blockers"][0]["application"], "billing-worker");
    assert_eq!(wait["blockers"][0]["state"], "idle in transaction");
    // Literals of the holder's query are redacted.
    assert_eq!(
        wait["blockers"][0]["query"],
        "SELECT * FROM orders WHERE id = ? AND ? <> ?"
    );
    assert!(!run.stdout.contains("4242") && !run.stderr.contains("4242"));
    let detail = json["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "for an AccessExclusiveLock on public.orders held by pid {pid} (app billing-worker"
        )),
        "{detail}"
    );
    assert!(detail.contains("gave up after 4 attempts"), "{detail}");
    // The error block says the same.
    assert!(
        run.stderr.contains("DETAIL: waited ")
            && run.stderr.contains(&format!("held by pid {pid}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("pg_terminate_backend("),
        "{}",
        run.stderr
    );
    assert!(!has_note_column(&db), "the database changed");
}

#[test]
fn a_head_without_begin_is_retried_as_a_whole() {
    let db = orders_db("implicit_head");
    // No transaction statement at all: one unit, one implicit transaction.
    let project = Project::with_deploy(
        "INSERT INTO orders VALUES (2);\nALTER TABLE orders ADD COLUMN note text;\n",
    );
    let (mut client, _pid) = holder(&db);
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1000));
        client.batch_execute("COMMIT").expect("commit the holder");
    });
    let run = deploy(
        &project,
        &db.name,
        &["--lock-timeout", "200ms", "--retries", "3", "--json"],
    );
    release.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!attempts(&run).is_empty(), "{}", run.stdout);
    // The INSERT of the failed attempts was rolled back with them.
    assert_eq!(db.count("SELECT count(*) FROM orders"), 2);
    assert!(has_note_column(&db));
}

#[test]
fn a_deadlock_with_another_session_is_retried_and_succeeds() {
    let db = orders_db("deadlock");
    db.client()
        .batch_execute("CREATE TABLE a (i int); CREATE TABLE b (i int)")
        .expect("tables");
    let project = Project::with_deploy(
        "BEGIN;\nLOCK TABLE a IN ACCESS EXCLUSIVE MODE;\nLOCK TABLE b IN ACCESS EXCLUSIVE MODE;\n\
         ALTER TABLE a ADD COLUMN j int;\nCOMMIT;\n",
    );
    let mut other = db.client();
    // The other session checks for deadlocks much later than the deploy's session (1 s, the
    // default), so the deploy is the one PostgreSQL picks as the victim.
    other
        .batch_execute(
            "SET deadlock_timeout = '20s'; SET application_name = 'other-app'; \
             BEGIN; LOCK TABLE b IN ACCESS EXCLUSIVE MODE",
        )
        .expect("lock b");
    let other_pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let run = thread::scope(|scope| {
        let deploying = scope.spawn(|| deploy(&project, &db.name, &["--retries", "3", "--json"]));
        // Once the deploy holds a and waits for b, ask for a: a deadlock.
        let mut watcher = db.client();
        let started = Instant::now();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'b'::regclass AND pid <> $1",
                    &[&other_pid],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the deploy never waited for b"
            );
            thread::sleep(Duration::from_millis(20));
        }
        other
            .batch_execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE; COMMIT")
            .expect("the other session gets a once the deploy gave way");
        deploying.join().unwrap()
    });
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tries = attempts(&run);
    assert!(!tries.is_empty(), "{}", run.stdout);
    assert_eq!(tries[0]["sqlstate"], "40P01");
    assert!(
        run.stderr
            .contains("failed with a deadlock (SQLSTATE 40P01)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.count("SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'j'"),
        1
    );
}

#[test]
fn a_tail_statement_is_retried_alone() {
    let db = orders_db("tail_retry");
    let project = Project::with_deploy(
        "BEGIN;\nCREATE TABLE audit (n int);\nINSERT INTO audit VALUES (1);\nCOMMIT;\n\
         ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let (mut client, _pid) = holder(&db);
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1000));
        client.batch_execute("COMMIT").expect("commit the holder");
    });
    let run = deploy(
        &project,
        &db.name,
        &["--lock-timeout", "200ms", "--retries", "4", "--json"],
    );
    release.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tries = attempts(&run);
    assert!(!tries.is_empty());
    assert!(tries.iter().all(|a| a["unit"] == 2), "{tries:?}");
    assert!(
        run.stderr.contains("it ran in its own transaction"),
        "{}",
        run.stderr
    );
    // The head ran once.
    assert_eq!(db.count("SELECT count(*) FROM audit"), 1);
    assert!(has_note_column(&db));
}

#[test]
fn a_tail_statement_inside_an_open_transaction_block_is_not_retried() {
    let db = orders_db("tail_block");
    let project = Project::with_deploy(
        "SELECT 1;\nCOMMIT;\nBEGIN;\nALTER TABLE orders ADD COLUMN note text;\nCOMMIT;\n",
    );
    let (_client, _pid) = holder(&db);
    let run = deploy(
        &project,
        &db.name,
        &["--lock-timeout", "200ms", "--retries", "3", "--json"],
    );
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert_eq!(attempts(&run).len(), 1);
    let detail = run.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("not retried"), "{detail}");
    assert!(!has_note_column(&db));
}

#[test]
fn lock_timeout_comes_from_pgmi_yaml_and_the_flag_wins() {
    let db = orders_db("lock_yaml");
    // A database default, which the deploy's setting overrides and --lock-timeout 0 turns off.
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET lock_timeout = '7s'",
            db.name
        ))
        .expect("database default");
    let project = Project::with_deploy(
        "DO $$ BEGIN RAISE NOTICE 'lock_timeout=%', current_setting('lock_timeout'); END $$;\n",
    )
    .file("pgmi.yaml", "lock_timeout: 1500ms\n");
    let run = deploy(&project, &db.name, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("lock_timeout=1500ms"), "{}", run.stderr);
    let run = deploy(&project, &db.name, &["--lock-timeout", "3s"]);
    assert!(run.stderr.contains("lock_timeout=3s"), "{}", run.stderr);
    let run = deploy(&project, &db.name, &["--lock-timeout", "0"]);
    assert!(run.stderr.contains("lock_timeout=0"), "{}", run.stderr);
    // Without either, the server's setting stays.
    let bare = Project::with_deploy(
        "DO $$ BEGIN RAISE NOTICE 'lock_timeout=%', current_setting('lock_timeout'); END $$;\n",
    );
    let run = deploy(&bare, &db.name, &[]);
    assert!(run.stderr.contains("lock_timeout=7s"), "{}", run.stderr);
    // A bad value is a configuration error, before connecting.
    let run = deploy(&bare, &db.name, &["--lock-timeout", "soon"]);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("--lock-timeout: invalid lock timeout"),
        "{}",
        run.stderr
    );
    let broken = Project::with_deploy("SELECT 1;").file("pgmi.yaml", "lock_timeout: 5\n");
    let run = deploy(&broken, &db.name, &[]);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("lock_timeout"), "{}", run.stderr);
}

#[test]
fn a_yaml_lock_timeout_bounds_the_wait_without_retries() {
    let db = orders_db("lock_yaml_wait");
    let project = Project::with_deploy(ALTER_HEAD).file("pgmi.yaml", "lock_timeout: 300ms\n");
    let (_client, pid) = holder(&db);
    let started = Instant::now();
    let run = deploy(&project, &db.name, &["--timeout", "30s"]);
    assert_eq!(run.code, 13, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(run.stderr.contains("(SQLSTATE 55P03)"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("held by pid {pid}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("retry with --retries N"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// PgBouncer

/// A PgBouncer started for one test on 127.0.0.1, stopped when dropped (also on panic).
struct Bouncer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bouncer {
    /// `pool_mode` is `transaction` or `session`. Server connections are handed out in
    /// turn (`server_round_robin`), so with two of them warm, consecutive transactions of
    /// one client land on different backends, as they do on a busy production pool.
    fn start(pool_mode: &str) -> Bouncer {
        let binary = pgbouncer_binary();
        let server = pgmi_tests::config("postgres");
        let server_host = match &server.get_hosts()[0] {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(dir) => dir.to_string_lossy().into_owned(),
        };
        let server_port = server.get_ports()[0];
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        // PgBouncer refuses to run as root: then it runs as `postgres` and logs in to the
        // server as that role (peer authentication); otherwise as this user and role.
        let server_user = if as_root {
            "postgres".to_string()
        } else {
            server.get_user().unwrap_or("postgres").to_string()
        };
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n\
                 * = host={server_host} port={server_port} user={server_user}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = any\n\
                 pool_mode = {pool_mode}\n\
                 server_round_robin = 1\n\
                 default_pool_size = 4\n\
                 ignore_startup_parameters = extra_float_digits\n"
            ),
        )
        .expect("write pgbouncer.ini");
        set_mode(&config, 0o644);
        let log = dir.path().join("pgbouncer.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary);
        if as_root {
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start pgbouncer");
        let mut bouncer = Bouncer {
            child,
            port,
            log,
            _dir: dir,
        };
        bouncer.wait_ready();
        bouncer
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pgbouncer exited ({status}):\n{}", self.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self, db: &str) -> Client {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("pgmi")
            .dbname(db);
        config
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect through pgbouncer: {e}\n{}", self.log_text()))
    }

    /// Open two server connections at once, so the pool has more than one to hand out.
    fn warm(&self, db: &str) {
        let mut a = self.client(db);
        let mut b = self.client(db);
        a.batch_execute("BEGIN; SELECT 1").unwrap();
        b.batch_execute("BEGIN; SELECT 1").unwrap();
        a.batch_execute("COMMIT").unwrap();
        b.batch_execute("COMMIT").unwrap();
    }

    fn deploy(&self, project: &Project, db: &str) -> Run {
        let path = project.path().to_str().expect("utf-8 path");
        let port = self.port.to_string();
        pgmi_upload(
            &[
                "deploy",
                path,
                "-d",
                db,
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "pgmi",
                "--sslmode",
                "disable",
            ],
            &[],
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pgbouncer_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PGBOUNCER") {
        return PathBuf::from(path);
    }
    // Debian installs it in sbin, which an ordinary user's PATH may lack.
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir: PathBuf| dir.join("pgbouncer"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("pgbouncer not found: install it (apt-get install pgbouncer; scripts/lib.sh does) or set PGBOUNCER")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

const CREATE_MARKER: &str = "BEGIN;\nCREATE TABLE deployed (id int);\nCOMMIT;\n";

#[test]
fn a_transaction_mode_pgbouncer_is_refused_before_anything_is_loaded() {
    let db = TestDb::new("bouncer_txn");
    let bouncer = Bouncer::start("transaction");
    bouncer.warm(&db.name);
    let project = Project::with_deploy(CREATE_MARKER).file("migrations/001.sql", "SELECT 1;\n");
    let run = bouncer.deploy(&project, &db.name);
    assert_eq!(run.code, 11, "{}\n{}", run.stderr, bouncer.log_text());
    assert!(
        run.stderr.contains("pooler in transaction mode"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("pool_mode = session"), "{}", run.stderr);
    assert!(!run.stderr.contains("Loaded "), "{}", run.stderr);
    assert!(
        db.text("SELECT to_regclass('public.deployed')::text")
            .is_none(),
        "deploy.sql ran"
    );
    // The deploy lock taken through the pool was released (the pooled backend left
    // holding it was ended): a direct deploy goes through while the pool still runs.
    let run = deploy(&project, &db.name, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    drop(bouncer);
}

#[test]
fn a_session_mode_pgbouncer_deploys() {
    let db = TestDb::new("bouncer_session");
    let bouncer = Bouncer::start("session");
    bouncer.warm(&db.name);
    let project = Project::with_deploy(CREATE_MARKER).file("migrations/001.sql", "SELECT 1;\n");
    let run = bouncer.deploy(&project, &db.name);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, bouncer.log_text());
    assert!(run.stderr.contains("Loaded 1 files"), "{}", run.stderr);
    assert!(db
        .text("SELECT to_regclass('public.deployed')::text")
        .is_some());
}
