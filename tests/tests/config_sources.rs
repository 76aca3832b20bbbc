//! Where `deploy` takes its connection and parameters from, through the real binary
//! (README, "Connecting"): each source on its own (URI, ADO.NET and
//! libpq key=value strings, PG* variables, `.pgpass`, `pgmi.yaml`, the project's `.env`, the
//! default Unix socket), their precedence, and the offline refusals of bad files.
//!
//! Every run gets a cleared environment with its own empty `HOME`, so the machine's
//! `~/.pgpass` and exported PG* variables cannot leak in. Password tests create a login role
//! with a unique name, reach the server over TCP on 127.0.0.1 (where the test cluster asks
//! for a password, as Debian's default pg_hba.conf does) and drop the role afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgmi_tests::{binary, connect, Project, Run, TestDb};

/// The deploy.sql of most tests: says who it runs as, where, and the `env` parameter.
const REPORT_SQL: &str = "DO $$ BEGIN RAISE NOTICE 'who=% db=% env=%', current_user, current_database(), coalesce(current_setting('pgmi.env', true), '-'); END $$;\n";

/// The test server as `(host, port, user)`; the host is a socket directory or a name.
fn server() -> (String, u16, String) {
    let config = pgmi_tests::config("postgres");
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Unix(dir) => dir.display().to_string(),
        postgres::config::Host::Tcp(name) => name.clone(),
    };
    let user = config.get_user().expect("test user").to_string();
    (host, config.get_ports()[0], user)
}

/// `pgmi-upload <args>` with only `env` (plus an empty `HOME` and `NO_COLOR`) in its
/// environment.
fn run_clean(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("home");
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_clear()
        .env("HOME", home.path())
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
    pgmi_tests::assert_no_secret_in(&run, args, env);
    run
}

/// `deploy <project> --session portable <extra>`.
fn deploy(project: &Project, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let path = project.path().to_str().expect("utf-8 temp path");
    let mut args = vec!["deploy", path, "--session", "portable"];
    args.extend_from_slice(extra);
    run_clean(&args, env)
}

#[track_caller]
fn ok(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "deploy failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

#[track_caller]
fn assert_reported(run: &Run, who: &str, db: &str, env: &str) {
    let line = format!("who={who} db={db} env={env}");
    assert!(
        run.stderr.contains(&line),
        "expected {line:?} in:\n{}",
        run.stderr
    );
}

fn database_exists(name: &str) -> bool {
    connect("postgres")
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .expect("pg_database")
        .is_some()
}

static ROLES: AtomicUsize = AtomicUsize::new(0);

/// A login role with a password, dropped (after the databases it owns) at the end.
struct Role {
    name: String,
    password: String,
}

impl Role {
    fn new(password: &str) -> Role {
        let name = format!(
            "pgmi_t_role_{}_{}",
            std::process::id(),
            ROLES.fetch_add(1, Ordering::SeqCst)
        );
        connect("postgres")
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN CREATEDB PASSWORD '{}'",
                password.replace('\'', "''")
            ))
            .expect("CREATE ROLE");
        pgmi_tests::register_secret(password);
        Role {
            name,
            password: password.to_string(),
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Ok(mut admin) = pgmi_tests::config("postgres").connect(postgres::NoTls) {
            let databases: Vec<String> = admin
                .query(
                    "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)",
                    &[&self.name],
                )
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            for db in databases {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
            }
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

/// Write a password file with `mode`; returns its path.
#[cfg(unix)]
fn pgpass(dir: &Path, lines: &[String], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pgpass");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write pgpass");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// Escape a .pgpass field.
fn pgpass_field(text: &str) -> String {
    text.replace('\\', "\\\\").replace(':', "\\:")
}

// ---------------------------------------------------------------------------------------
// One source at a time.

#[test]
fn uri_connection_string() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("cs_uri");
    let uri = format!(
        "postgresql://{user}@/{}?host={}&port={port}",
        db.name,
        host.replace('/', "%2F")
    );
    let run = ok(deploy(
        &Project::with_deploy(REPORT_SQL),
        &["--connection", &uri],
        &[],
    ));
    assert_reported(&run, &user, &db.name, "-");
}

#[test]
fn ado_net_connection_string_with_a_quoted_password() {
    let (_, port, _) = server();
    let role = Role::new("semi;colon=and'quote");
    let db = TestDb::unnamed("cs_ado");
    let string = format!(
        "Server=127.0.0.1;Port={port};Initial Catalog={};User Id={};Password='{}';SSL Mode=Disable;Pooling=true",
        db.name,
        role.name,
        role.password.replace('\'', "''")
    );
    let run = ok(deploy(
        &Project::with_deploy(REPORT_SQL),
        &[],
        &[("PGMI_CONNECTION_STRING", &string)],
    ));
    assert_reported(&run, &role.name, &db.name, "-");
    assert!(!run.stderr.contains("semi;colon"), "{}", run.stderr);
}

#[test]
fn key_value_connection_string_with_a_quoted_password() {
    let (_, port, _) = server();
    let role = Role::new("with space and 'quote'");
    let db = TestDb::unnamed("cs_kv");
    let string = format!(
        "host=127.0.0.1 port={port} dbname={} user={} password='{}' sslmode=disable",
        db.name,
        role.name,
        role.password.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let run = ok(deploy(
        &Project::with_deploy(REPORT_SQL),
        &[],
        &[("DATABASE_URL", &string)],
    ));
    assert_reported(&run, &role.name, &db.name, "-");
}

#[test]
fn pg_environment_variables() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("cs_env");
    let port = port.to_string();
    let run = ok(deploy(
        &Project::with_deploy(REPORT_SQL),
        &[],
        &[
            ("PGHOST", &host),
            ("PGPORT", &port),
            ("PGUSER", &user),
            ("PGDATABASE", &db.name),
        ],
    ));
    assert_reported(&run, &user, &db.name, "-");
}

/// The password file: used for the target and, with its own database name, for the
/// maintenance connection that creates it; ignored (with a warning) while others may read it.
#[cfg(unix)]
#[test]
fn pgpass_file_per_database_and_permissions() {
    let (_, port, _) = server();
    let role = Role::new("s3cr:et\\pw");
    let db = TestDb::unnamed("cs_pgpass");
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |database: &str| {
        format!(
            "127.0.0.1:{port}:{database}:{}:{}",
            role.name,
            pgpass_field(&role.password)
        )
    };
    let port_text = port.to_string();
    let project = Project::with_deploy(REPORT_SQL);
    let run_with = |file: &Path| {
        deploy(
            &project,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port_text,
                "-U",
                &role.name,
                "-d",
                &db.name,
            ],
            &[
                ("PGPASSFILE", file.to_str().expect("utf-8 path")),
                ("PGSSLMODE", "disable"),
            ],
        )
    };

    // Readable by others: not used, and said so.
    let file = pgpass(dir.path(), &[line("*")], 0o644);
    let run = run_with(&file);
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "pgmi: warning: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            file.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!database_exists(&db.name));

    // Only the target's line: the maintenance connection (to `postgres`) has no password,
    // so the missing target cannot be created.
    let file = pgpass(dir.path(), &[line(&db.name)], 0o600);
    let run = run_with(&file);
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr.contains("maintenance database"),
        "{}",
        run.stderr
    );
    assert!(!database_exists(&db.name));

    // Both lines: created through `postgres`, deployed into the target.
    let file = pgpass(
        dir.path(),
        &["# comment".to_string(), line("postgres"), line(&db.name)],
        0o600,
    );
    let run = ok(run_with(&file));
    assert_reported(&run, &role.name, &db.name, "-");
    assert!(
        run.stderr.contains(&format!(
            "Database \"{}\" does not exist; creating",
            db.name
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cr"), "{}", run.stderr);
}

#[test]
fn pgmi_yaml_connection_and_params() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("cs_yaml");
    let project = Project::with_deploy(REPORT_SQL).file(
        "pgmi.yaml",
        format!(
            "connection:\n  host: {host}\n  port: {port}\n  username: {user}\n  database: {}\n  sslmode: disable\nparams:\n  env: staging\ntimeout: 2m\n",
            db.name
        ),
    );
    let run = ok(deploy(&project, &["--verbose"], &[]));
    assert_reported(&run, &user, &db.name, "staging");
    assert!(
        run.stderr
            .contains(&format!("database={} (pgmi.yaml)", db.name)),
        "{}",
        run.stderr
    );
}

#[test]
fn project_dotenv_fills_the_environment() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("cs_dotenv");
    let project = Project::with_deploy(REPORT_SQL).file(
        ".env",
        format!(
            "# local settings\nexport PGHOST={host}\nPGPORT=\"{port}\"\nPGUSER={user}\nPGDATABASE={}\n",
            db.name
        ),
    );
    let run = ok(deploy(&project, &["--verbose"], &[]));
    assert_reported(&run, &user, &db.name, "-");
    assert!(
        run.stderr.contains("PGDATABASE from .env"),
        "{}",
        run.stderr
    );
    // The environment wins over .env.
    let other = TestDb::unnamed("cs_dotenv_env");
    let run = ok(deploy(&project, &[], &[("PGDATABASE", &other.name)]));
    assert_reported(&run, &user, &other.name, "-");
}

#[test]
fn malformed_dotenv_warns_without_echoing_and_applies_nothing() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("cs_dotenv_bad");
    pgmi_tests::register_secret("hunter2secret");
    let project = Project::with_deploy(REPORT_SQL).file(
        ".env",
        "PGDATABASE=not_this_one\nPGPASSWORD hunter2secret\n",
    );
    let port = port.to_string();
    let run = ok(deploy(
        &project,
        &["-d", &db.name],
        &[("PGHOST", &host), ("PGPORT", &port), ("PGUSER", &user)],
    ));
    assert_reported(&run, &user, &db.name, "-");
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with("pgmi: warning: "))
        .unwrap_or_else(|| panic!("no warning in:\n{}", run.stderr));
    assert!(warning.contains(".env line 2:"), "{warning}");
    assert!(warning.contains("KEY=VALUE"), "{warning}");
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(!run.stderr.contains("not_this_one"), "{}", run.stderr);
}

/// No host anywhere: the default socket directory when its socket exists (a deliberate
/// difference from the original pgmi, which always tries localhost).
#[test]
fn default_unix_socket() {
    let (host, port, user) = server();
    if host != "/var/run/postgresql" {
        eprintln!("skipped: the test server is not on the default socket directory");
        return;
    }
    let db = TestDb::unnamed("cs_socket");
    let port = port.to_string();
    let run = ok(deploy(
        &Project::with_deploy(REPORT_SQL),
        &["-d", &db.name, "-p", &port, "--verbose"],
        &[("USER", &user)],
    ));
    assert_reported(&run, &user, &db.name, "-");
    assert!(
        run.stderr.contains("host=/var/run/postgresql (default)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("user=") && run.stderr.contains("(USER)"));
}

// ---------------------------------------------------------------------------------------
// Precedence.

#[test]
fn flag_beats_environment_beats_yaml() {
    let (host, port, user) = server();
    let (from_yaml, from_env, from_flag) = (
        TestDb::unnamed("prec_yaml"),
        TestDb::unnamed("prec_env"),
        TestDb::unnamed("prec_flag"),
    );
    let project = Project::with_deploy(REPORT_SQL).file(
        "pgmi.yaml",
        format!(
            "connection:\n  host: /nonexistent-directory\n  port: 1\n  username: nobody_here\n  database: {}\n",
            from_yaml.name
        ),
    );
    let port = port.to_string();
    let granular = [
        ("PGHOST", host.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", user.as_str()),
    ];
    let run = ok(deploy(&project, &[], &granular));
    assert_reported(&run, &user, &from_yaml.name, "-");

    let mut with_env = granular.to_vec();
    with_env.push(("PGDATABASE", &from_env.name));
    let run = ok(deploy(&project, &[], &with_env));
    assert_reported(&run, &user, &from_env.name, "-");

    let run = ok(deploy(&project, &["-d", &from_flag.name], &with_env));
    assert_reported(&run, &user, &from_flag.name, "-");

    // A connection string replaces the whole granular chain, pgmi.yaml included.
    let uri = format!(
        "postgresql:///{}?host={}&port={port}&user={user}",
        from_flag.name,
        host.replace('/', "%2F")
    );
    let run = ok(deploy(&project, &["--connection", &uri], &[]));
    assert_reported(&run, &user, &from_flag.name, "-");
}

#[test]
fn params_yaml_below_files_below_flags() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("prec_params");
    let sql = "DO $$ BEGIN RAISE NOTICE 'a=% b=% c=%', current_setting('pgmi.a'), current_setting('pgmi.b'), current_setting('pgmi.c'); END $$;\n";
    let project =
        Project::with_deploy(sql).file("pgmi.yaml", "params:\n  a: yaml\n  b: yaml\n  c: yaml\n");
    let files = tempfile::tempdir().expect("tempdir");
    let params_file = files.path().join("p.env");
    std::fs::write(&params_file, "b=file\nc=file\n").expect("write");
    let port = port.to_string();
    let run = ok(deploy(
        &project,
        &[
            "-d",
            &db.name,
            "--params-file",
            params_file.to_str().expect("utf-8"),
            "--param",
            "c=flag",
        ],
        &[("PGHOST", &host), ("PGPORT", &port), ("PGUSER", &user)],
    ));
    assert!(
        run.stderr.contains("a=yaml b=file c=flag"),
        "{}",
        run.stderr
    );
}

#[test]
fn yaml_timeout_applies_when_no_flag_is_given() {
    let (host, port, user) = server();
    let db = TestDb::unnamed("prec_timeout");
    let project = Project::with_deploy("SELECT pg_sleep(10);\n").file("pgmi.yaml", "timeout: 1s\n");
    let port = port.to_string();
    let run = deploy(
        &project,
        &["-d", &db.name],
        &[("PGHOST", &host), ("PGPORT", &port), ("PGUSER", &user)],
    );
    assert_eq!(run.code, 16, "{}", run.stderr);
    assert!(
        run.stderr.contains("timeout 1s (pgmi.yaml) expired"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Refused offline (exit 10, nothing created).

#[track_caller]
fn assert_refused(project: &Project, db: &TestDb, needles: &[&str]) -> Run {
    let (host, port, user) = server();
    let port = port.to_string();
    let run = deploy(
        project,
        &["-d", &db.name],
        &[("PGHOST", &host), ("PGPORT", &port), ("PGUSER", &user)],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            run.stderr
        );
    }
    assert!(!database_exists(&db.name), "nothing may be created");
    run
}

#[test]
fn bad_pgmi_yaml_is_refused_naming_key_and_line() {
    let db = TestDb::unnamed("bad_yaml");
    let project = Project::with_deploy("SELECT 1;").file(
        "pgmi.yaml",
        "connection:\n  host: localhost\n  passwrod: hunter2\n",
    );
    let run = assert_refused(
        &project,
        &db,
        &["pgmi.yaml line 3 column 3:", "unknown field `passwrod`"],
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);

    let project = Project::with_deploy("SELECT 1;").file(
        "pgmi.yaml",
        "params:\n  env: dev\nconnection:\n  port: fivefourthreetwo\n",
    );
    assert_refused(
        &project,
        &db,
        &["pgmi.yaml line 4 column 9:", "connection.port"],
    );

    let project =
        Project::with_deploy("SELECT 1;").file("pgmi.yaml", "connection:\n  auth_method: asw\n");
    assert_refused(
        &project,
        &db,
        &[
            "pgmi.yaml line 2",
            "unknown auth_method",
            "aws, azure or google",
        ],
    );
}

#[test]
fn bad_connection_strings_are_refused_without_echo() {
    let db = TestDb::unnamed("bad_string");
    let project = Project::with_deploy("SELECT 1;");
    let run = run_clean(
        &[
            "deploy",
            project.path().to_str().expect("utf-8"),
            "-d",
            &db.name,
        ],
        &[(
            "PGMI_CONNECTION_STRING",
            "Host=localhost;Databse=x;Password=hunter2",
        )],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown key \"Databse\""),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);

    let run = run_clean(
        &[
            "deploy",
            project.path().to_str().expect("utf-8"),
            "-h",
            "localhost",
            "--connection",
            "host=localhost password=hunter2",
        ],
        &[],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("cannot specify both"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}
