//! Helpers for the live-server tests: a throw-away database per test, project directories
//! on disk, and a runner for the real `pgmi-upload` binary.
//!
//! The server is the local cluster the scripts start (`PGHOST`, default
//! `/var/run/postgresql`; `PGPORT`, default 5432), reached as the OS user's own superuser
//! role. Each test creates its own database, so tests run in parallel.

// Only the extension needs unsafe code (the PostgreSQL interface); nothing here does.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use postgres::Client;

pub mod cluster;
pub mod latency;
pub mod stand_in;

pub(crate) fn host() -> String {
    std::env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".to_string())
}

pub(crate) fn port() -> u16 {
    std::env::var("PGPORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

/// `PGUSER`, else the OS user's name (peer authentication maps it to the same role).
fn user() -> String {
    if let Some(user) = std::env::var("PGUSER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Connection settings for `database` as the test superuser.
pub fn config(database: &str) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host(&host())
        .port(port())
        .user(&user())
        .dbname(database);
    config
}

fn try_connect(database: &str) -> Result<Client, postgres::Error> {
    config(database).connect(postgres::NoTls)
}

/// A connection to `database` as the test superuser.
pub fn connect(database: &str) -> Client {
    try_connect(database).unwrap_or_else(|e| {
        let detail = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default();
        panic!(
            "cannot connect to {database} on {} as {}: {e} {detail}",
            host(),
            user()
        )
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database that exists for one test and is dropped (with its connections) afterwards.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// Creates a fresh database with the extension installed.
    pub fn new(label: &str) -> TestDb {
        let db = TestDb::empty(label);
        db.client()
            .batch_execute("CREATE EXTENSION pgmi")
            .expect("CREATE EXTENSION pgmi");
        db
    }

    /// Creates a fresh database without the extension.
    pub fn empty(label: &str) -> TestDb {
        let db = TestDb::unnamed(label);
        connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {}", db.name))
            .expect("CREATE DATABASE");
        db
    }

    /// Creates a fresh database (without the extension) whose default collation is a
    /// linguistic en-US one: ICU where the server has it (PostgreSQL 15 and newer, built
    /// with ICU), glibc's `en_US.UTF-8` otherwise (the scripts generate that locale). Checks
    /// that it really orders `-`, `_`, `.` and case unlike bytes, so a test of byte order
    /// on it can fail.
    pub fn linguistic(label: &str) -> TestDb {
        let db = TestDb::unnamed(label);
        let mut admin = connect("postgres");
        let icu: bool = admin
            .query_one(
                "SELECT pg_catalog.current_setting('server_version_num')::int >= 150000
                    AND EXISTS (SELECT FROM pg_catalog.pg_collation
                                WHERE collprovider = 'i' AND collname = 'en-US-x-icu')",
                &[],
            )
            .expect("ICU available")
            .get(0);
        let options = if icu {
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        } else {
            "LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'"
        };
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} ENCODING 'UTF8' {options} TEMPLATE template0",
                db.name
            ))
            .unwrap_or_else(|e| panic!("create a database with {options}: {e:?}"));
        let unlike_bytes: bool = db
            .client()
            .query_one(
                "WITH w(x) AS (VALUES ('a_b'), ('a-c'), ('a.d'), ('aB'), ('ab'), ('A'))
                 SELECT ARRAY(SELECT x FROM w ORDER BY x)
                        IS DISTINCT FROM ARRAY(SELECT x FROM w ORDER BY x COLLATE \"C\")",
                &[],
            )
            .expect("compare orders")
            .get(0);
        assert!(unlike_bytes, "{options} orders like bytes here");
        db
    }

    /// A unique name whose database does not exist yet (dropped at the end if created).
    pub fn unnamed(label: &str) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        TestDb {
            name: format!("pgmi_t_{label}_{}_{n}", std::process::id()),
        }
    }

    pub fn client(&self) -> Client {
        connect(&self.name)
    }

    /// One value from a query, as text (NULL → None).
    pub fn text(&self, query: &str) -> Option<String> {
        self.client().query_one(query, &[]).expect(query).get(0)
    }

    pub fn count(&self, query: &str) -> i64 {
        self.client().query_one(query, &[]).expect(query).get(0)
    }

    /// Waits until no session is connected to this database. A closed connection's server
    /// process goes on for a moment after the client has gone (and holds its session
    /// locks, the deploy lock included, until it exits), so a test that runs deploys back
    /// to back, or counts sessions, waits for it first. Panics after ten seconds.
    pub fn wait_until_idle(&self) {
        let mut admin = connect("postgres");
        for _ in 0..400 {
            let left: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = $1",
                    &[&self.name],
                )
                .expect("pg_stat_activity")
                .get(0);
            if left == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("sessions on {} did not end within ten seconds", self.name);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // never panic here: a panic while unwinding another one aborts the test binary
        if let Ok(mut admin) = try_connect("postgres") {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The two ways to build a session (README, "Managed PostgreSQL"); tests of the session
/// API, of `pgmi_test` and of the deploy flow run against both through [`both_kinds!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `pgmi_load()` of the extension, installed in the test database.
    Extension,
    /// Built by the client (`pgmi_upload::portable`); the database has no extension.
    Portable,
}

impl Kind {
    /// The `--session` value.
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Extension => "extension",
            Kind::Portable => "portable",
        }
    }

    /// A fresh database for this kind: with the extension installed, or without it.
    pub fn db(self, label: &str) -> TestDb {
        match self {
            Kind::Extension => TestDb::new(label),
            Kind::Portable => TestDb::empty(label),
        }
    }

    /// [`TestDb::linguistic`] for this kind: with the extension installed, or without it.
    pub fn linguistic_db(self, label: &str) -> TestDb {
        let db = TestDb::linguistic(label);
        if self == Kind::Extension {
            db.client()
                .batch_execute("CREATE EXTENSION pgmi")
                .expect("CREATE EXTENSION pgmi");
        }
        db
    }

    /// Loads `files` (paths relative to the project root, as in a bundle) into a session on
    /// `client`; panics on failure.
    pub fn load(self, client: &mut Client, files: &[(&str, &[u8])]) {
        self.load_with_params(client, files, &[]);
    }

    pub fn load_with_params(
        self,
        client: &mut Client,
        files: &[(&str, &[u8])],
        params: &[(&str, &str)],
    ) {
        self.try_load(client, files, params)
            .unwrap_or_else(|e| panic!("{} load failed: {e}", self.flag()));
    }

    /// Loads `files`; the error as text (the server's message, or pgmi-core's).
    pub fn try_load(
        self,
        client: &mut Client,
        files: &[(&str, &[u8])],
        params: &[(&str, &str)],
    ) -> Result<(), String> {
        let raw: Vec<pgmi_core::project::RawFile> = files
            .iter()
            .map(|(p, b)| pgmi_core::project::RawFile {
                path: (*p).to_string(),
                bytes: b.to_vec(),
            })
            .collect();
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let text = |e: postgres::Error| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        match self {
            Kind::Extension => {
                let bundle = pgmi_core::bundle::write(&raw, &params).map_err(|e| e.to_string())?;
                client
                    .query("SELECT * FROM pgmi_load($1)", &[&bundle])
                    .map(|_| ())
                    .map_err(text)
            }
            Kind::Portable => {
                let project = pgmi_core::project::build(raw).map_err(|e| e.to_string())?;
                let params = pgmi_core::params::finalize(params).map_err(|e| e.to_string())?;
                pgmi_upload::portable::load(client, &project, &params)
                    .map(|_| ())
                    .map_err(text)
            }
        }
    }
}

/// Runs each named `fn(Kind)` once per session kind: `both_kinds!(a, b)` makes the tests
/// `extension::a`, `portable::a`, `extension::b`, `portable::b`.
#[macro_export]
macro_rules! both_kinds {
    ($($name:ident),* $(,)?) => {
        mod extension {
            $(#[test]
            fn $name() {
                super::$name($crate::Kind::Extension)
            })*
        }
        mod portable {
            $(#[test]
            fn $name() {
                super::$name($crate::Kind::Portable)
            })*
        }
    };
}

/// A project directory on disk.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A project whose deploy.sql is `deploy`.
    pub fn with_deploy(deploy: &str) -> Project {
        Project::new().file("deploy.sql", deploy)
    }

    pub fn file(self, rel: &str, content: impl AsRef<[u8]>) -> Project {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

/// The outcome of one `pgmi-upload` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// The `pgmi-upload` binary of this workspace (built by `cargo build -p pgmi-upload`, which
/// scripts/test.sh runs first), or `PGMI_UPLOAD_BIN`.
pub fn binary() -> PathBuf {
    if let Ok(bin) = std::env::var("PGMI_UPLOAD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary> → target/<profile>/pgmi-upload
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("pgmi-upload");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p pgmi-upload` first",
        bin.display()
    );
    bin
}

/// Runs `pgmi-upload <args>` against the test server with a clean, predictable environment.
pub fn pgmi_upload(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("PGDATABASE")
        .env_remove("PGMI_CONNECTION_STRING")
        .env_remove("DATABASE_URL")
        .env("PGHOST", host())
        .env("PGPORT", port().to_string())
        .env("PGUSER", user())
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pgmi-upload");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_secret_in(&run, args, env);
    run
}

/// Every run of the suite is checked here: nothing the user gave as a secret — a password
/// in the environment or a connection string, a TLS key passphrase, the value of a
/// parameter whose name looks secret — appears in stdout or stderr, whatever the outcome.
pub fn assert_no_secret_in(run: &Run, args: &[&str], env: &[(&str, &str)]) {
    let registered = SECRETS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for secret in secrets_of(args, env).into_iter().chain(registered) {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(&secret),
                "a secret given to pgmi-upload appears in its {stream}:\n{text}"
            );
        }
    }
}

/// Secrets a test put where the runner cannot see them (a password file, `.env`, a role's
/// password on the server): registered here, checked in every later run of this process.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Register a secret that no output of pgmi-upload may ever contain.
pub fn register_secret(secret: &str) {
    if secret.len() >= 4 {
        SECRETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.to_string());
    }
}

/// The secrets in a command line and environment (values shorter than 4 characters are
/// skipped: they would match by accident).
pub fn secrets_of(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in env {
        if matches!(*key, "PGPASSWORD" | "PGSSLPASSWORD" | "AZURE_CLIENT_SECRET")
            || pgmi_core::params::looks_secret(key)
        {
            out.push(value.to_string());
        }
        if matches!(*key, "PGMI_CONNECTION_STRING" | "DATABASE_URL") {
            out.extend(connection_string_secrets(value));
        }
    }
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let value = match arg.split_once('=') {
            Some((flag, v)) if flag.starts_with("--") => Some((flag, v.to_string())),
            _ if arg.starts_with("--") => it.peek().map(|v| (*arg, v.to_string())),
            _ => None,
        };
        match value {
            Some(("--connection", text)) => out.extend(connection_string_secrets(&text)),
            Some(("--param", pair)) => {
                if let Some((k, v)) = pair.split_once('=') {
                    if pgmi_core::params::looks_secret(k) {
                        out.push(v.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    out.retain(|s| s.len() >= 4);
    out
}

/// Passwords in a URI (`scheme://user:PASSWORD@`), and `password=`/`sslpassword=` values of
/// key=value and ADO.NET strings (`Password=`, `Pwd=`).
fn connection_string_secrets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rest) = text.split_once("://").map(|(_, r)| r) {
        if let Some(at) = rest.rfind('@') {
            if let Some((_, pw)) = rest[..at].split_once(':') {
                out.push(pw.to_string());
            }
        }
    }
    for part in text.split([';', ' ', '&', '?']) {
        if let Some((k, v)) = part.split_once('=') {
            let k = k.trim().to_ascii_lowercase();
            if matches!(
                k.as_str(),
                "password" | "pwd" | "sslpassword" | "ssl password"
            ) {
                out.push(v.trim().trim_matches(['\'', '"']).to_string());
            }
        }
    }
    out
}

/// `pgmi-upload deploy <project> -d <db> <extra>`.
pub fn deploy(project: &Project, db: &str, extra: &[&str]) -> Run {
    let path = project.path().to_str().expect("utf-8 temp path");
    let mut args = vec!["deploy", path, "-d", db];
    args.extend_from_slice(extra);
    pgmi_upload(&args, &[])
}

/// `pgmi-upload deploy <project> -d <db> --session <kind> <extra>`.
pub fn deploy_as(kind: Kind, project: &Project, db: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--session", kind.flag()];
    args.extend_from_slice(extra);
    deploy(project, db, &args)
}

/// Like [`deploy_as`] but asserts success and returns the run.
pub fn deploy_ok_as(kind: Kind, project: &Project, db: &str, extra: &[&str]) -> Run {
    let run = deploy_as(kind, project, db, extra);
    assert_eq!(
        run.code,
        0,
        "{} deploy failed:\n{}",
        kind.flag(),
        run.stderr
    );
    run
}

/// Like [`deploy`] but asserts success and returns the run.
pub fn deploy_ok(project: &Project, db: &str, extra: &[&str]) -> Run {
    let run = deploy(project, db, extra);
    assert_eq!(run.code, 0, "deploy failed:\n{}", run.stderr);
    run
}

/// Compares `actual` with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// Replaces what differs between runs (timings, generated names) with stable tokens.
pub fn redact(text: &str, db: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.replace(db, "<db>").lines() {
        out.push_str(&redact_numbers_after(line));
        out.push('\n');
    }
    out
}

/// Timings look like `0.42s`, `3.2ms`, `time="0.001234"`, `# time=3.2ms`, `[0.06s] `.
fn redact_numbers_after(line: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().collect();
            let rest: String = chars[i..].iter().take(2).collect();
            let before: String = chars[..start]
                .iter()
                .rev()
                .take(6)
                .collect::<String>()
                .chars()
                .rev()
                .collect();
            let is_time = number.contains('.')
                && (rest.starts_with('s')
                    || rest.starts_with("ms")
                    || rest.starts_with("µs")
                    || before.ends_with("time=\"")
                    || before.ends_with("time="));
            out.push_str(if is_time { "<t>" } else { &number });
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Runs `pgmi-upload <args>` on a pseudo-terminal (util-linux `script`), feeding `input`
/// as what the user types. stdout and stderr arrive merged (as on a terminal) in
/// `Run::stdout`; the environment is the one [`pgmi_upload`] sets.
pub fn pgmi_upload_tty(args: &[&str], env: &[(&str, &str)], input: &str) -> Run {
    use std::io::Write;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(binary().to_str().expect("utf-8 binary path"));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("PGDATABASE")
        .env_remove("PGMI_CONNECTION_STRING")
        .env_remove("DATABASE_URL")
        .env_remove("CI")
        .env_remove("PGMI_NON_INTERACTIVE")
        .env("PGHOST", host())
        .env("PGPORT", port().to_string())
        .env("PGUSER", user())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run script(1)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write the typed input");
    let out = child.wait_with_output().expect("wait for script(1)");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_secret_in(&run, args, env);
    run
}

/// Building bundles by hand, for the tests that feed hostile ones to `pgmi_load`.
pub mod bundles {
    use std::io::Write;

    use flate2::{write::GzEncoder, Compression};

    /// `bytes` gzip-compressed.
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(bytes).expect("gzip");
        gz.finish().expect("gzip")
    }

    /// One header block of type `kind` (named like a GNU long-name header) that claims
    /// `size` bytes, followed by one data block, gzipped.
    pub fn lying_header(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.resize(1024, b'x');
        gzip(&tar)
    }

    /// A valid bundle of one file, `keep.sql`.
    pub fn good() -> Vec<u8> {
        pgmi_core::bundle::write(
            &[pgmi_core::project::RawFile {
                path: "keep.sql".into(),
                bytes: b"SELECT 1;".to_vec(),
            }],
            &[],
        )
        .expect("bundle")
    }
}
