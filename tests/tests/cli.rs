//! The command line as a user meets it: `--overwrite` and its approver matrix (with a real
//! pseudo-terminal), the exit codes that need a live server (12, 16, 130), `--compat`,
//! both program names, `version`, `completion` and the manual page.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgmi_tests::*;

fn path(project: &Project) -> &str {
    project.path().to_str().expect("utf-8 temp path")
}

/// A database with state that `--overwrite` must remove, and properties it must keep.
fn populated(label: &str) -> TestDb {
    let db = TestDb::empty(label);
    let name = &db.name;
    let mut admin = connect("postgres");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} CONNECTION LIMIT 17;
             ALTER DATABASE {name} SET work_mem = '7MB';
             ALTER DATABASE {name} SET search_path = app, \"Odd Schema\", public;
             COMMENT ON DATABASE {name} IS 'keep ''me''';"
        ))
        .expect("set database properties");
    db.client()
        .batch_execute("CREATE TABLE precious (x int); INSERT INTO precious VALUES (1)")
        .expect("create state");
    // So that the overwrite tests count exactly the sessions they open (a CI run once saw
    // "Ended 2 other session(s)" where one was open).
    db.wait_until_idle();
    db
}

fn has_precious(db: &TestDb) -> bool {
    db.count("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'precious'") == 1
}

fn assert_properties_kept(db: &TestDb) {
    let row = connect("postgres")
        .query_one(
            "SELECT d.datconnlimit,
                    pg_catalog.shobj_description(d.oid, 'pg_database'),
                    (SELECT s.setconfig::text FROM pg_catalog.pg_db_role_setting s
                      WHERE s.setdatabase = d.oid AND s.setrole = 0)
               FROM pg_catalog.pg_database d WHERE d.datname = $1",
            &[&db.name],
        )
        .expect("read database properties");
    assert_eq!(row.get::<_, i32>(0), 17);
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("keep 'me'")
    );
    let config: String = row.get(2);
    assert!(config.contains("work_mem=7MB"), "{config}");
    assert!(
        config.contains(r#"search_path=app, \"Odd Schema\", public"#),
        "{config}"
    );
}

/// `deploy <project> -d <db> --overwrite <extra>`.
fn overwrite_args<'a>(project: &'a Project, db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["deploy", path(project), "-d", db, "--overwrite"];
    args.extend_from_slice(extra);
    args
}

fn project() -> Project {
    Project::with_deploy("CREATE TABLE fresh (x int);\n")
}

#[test]
fn overwrite_without_terminal_needs_force() {
    let db = populated("ow_refuse");
    let project = project();
    let run = pgmi_upload(&overwrite_args(&project, &db.name, &["--json"]), &[]);
    assert_eq!(run.code, 12, "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(run.json()["exitCode"], 12);
    assert!(has_precious(&db), "nothing may be dropped");

    // CI=true means "no terminal" even on one.
    let run = pgmi_upload_tty(
        &overwrite_args(&project, &db.name, &[]),
        &[("CI", "true")],
        &format!("{}\n", db.name),
    );
    assert_eq!(run.code, 12, "{}", run.stdout);
    assert!(has_precious(&db));
}

#[test]
fn overwrite_with_force_and_no_terminal_recreates_and_keeps_properties() {
    let db = populated("ow_force");
    // A session left open on the target is ended first.
    let mut other = db.client();
    other.batch_execute("SELECT 1").unwrap();
    let project = project();
    let run = pgmi_upload(
        &overwrite_args(&project, &db.name, &["--force", "--session", "portable"]),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("--force: dropping and recreating \"{}\"", db.name)),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains(&format!("Recreated database \"{}\"", db.name)));
    assert!(
        run.stderr.contains("Ended 1 other session(s)"),
        "{}",
        run.stderr
    );
    assert!(!has_precious(&db), "the old content is gone");
    assert_eq!(
        db.count("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'fresh'"),
        1
    );
    assert_properties_kept(&db);
    assert!(other.batch_execute("SELECT 1").is_err(), "terminated");
}

#[test]
fn overwrite_on_a_terminal_asks_for_the_name() {
    let db = populated("ow_tty");
    let project = project();
    let args = overwrite_args(&project, &db.name, &["--session", "portable"]);

    let run = pgmi_upload_tty(&args, &[], "wrong_name\n");
    assert_eq!(run.code, 12, "{}", run.stdout);
    assert!(run.stdout.contains("Type the database name to confirm"));
    assert!(run.stdout.contains("does not match"), "{}", run.stdout);
    assert!(has_precious(&db));

    let run = pgmi_upload_tty(&args, &[], "");
    assert_eq!(run.code, 12, "{}", run.stdout);
    assert!(run.stdout.contains("--force"), "{}", run.stdout);
    assert!(has_precious(&db));

    let run = pgmi_upload_tty(&args, &[], &format!("{}\n", db.name));
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("Recreated database"), "{}", run.stdout);
    assert!(!has_precious(&db));
    assert_properties_kept(&db);
}

#[test]
fn overwrite_with_force_on_a_terminal_counts_down() {
    let db = populated("ow_countdown");
    let project = project();
    let start = Instant::now();
    let run = pgmi_upload_tty(
        &overwrite_args(&project, &db.name, &["--force", "--session", "portable"]),
        &[],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(start.elapsed() >= Duration::from_secs(5), "waited 5 s");
    for left in ["in 5 s", "in 1 s", "Ctrl-C to cancel"] {
        assert!(run.stdout.contains(left), "{left}: {}", run.stdout);
    }
    assert!(!has_precious(&db));
}

#[test]
fn overwrite_refuses_protected_databases_offline_and_creates_missing_ones() {
    let project = project();
    for target in ["postgres", "template0", "Template1"] {
        let run = pgmi_upload(&overwrite_args(&project, target, &["--force"]), &[]);
        assert_eq!(run.code, 10, "{target}: {}", run.stderr);
        assert!(run.stderr.contains("refuses to drop"), "{}", run.stderr);
        assert!(!run.stderr.contains("Preparing session"));
    }

    // A missing target is created without a prompt, even without --force.
    let db = TestDb::unnamed("ow_missing");
    let run = pgmi_upload(
        &overwrite_args(&project, &db.name, &["--session", "portable"]),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("does not exist; creating"));
}

#[test]
fn compat_is_checked_offline() {
    let project = project();
    let db = TestDb::unnamed("compat");
    let run = pgmi_upload(
        &[
            "deploy",
            path(&project),
            "-d",
            &db.name,
            "--compat",
            "2",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("--compat"), "{}", run.stderr);
    assert_eq!(run.json()["status"], "failed");
    assert_eq!(
        connect("postgres")
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1",
                &[&db.name]
            )
            .unwrap()
            .get::<_, i64>(0),
        0,
        "nothing created"
    );
    let run = pgmi_upload(
        &[
            "deploy",
            path(&project),
            "-d",
            &db.name,
            "--compat",
            "1",
            "--session",
            "portable",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn the_original_ci_line_runs_under_the_name_pgmi() {
    // `pgmi deploy . -d "$DB" --compat 1 --force`, from the original's documentation.
    let project = project();
    let db = TestDb::unnamed("pgmi_name");
    let pgmi = binary().with_file_name("pgmi");
    assert!(pgmi.exists(), "cargo build produces the pgmi binary too");
    let out = Command::new(&pgmi)
        .current_dir(project.path())
        .args(["deploy", ".", "-d", &db.name, "--compat", "1", "--force"])
        .env("NO_COLOR", "1")
        .env_remove("PGDATABASE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("files loaded"), "{stderr}");
}

#[test]
fn version_names_compat_commit_and_platform() {
    for name in ["pgmi", "pgmi-upload"] {
        let bin = binary().with_file_name(name);
        for arg in ["version", "--version"] {
            let out = Command::new(&bin).arg(arg).output().unwrap();
            assert_eq!(out.status.code(), Some(0));
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or_default();
            assert!(first.starts_with(&format!("{name} ")), "{arg}: {text}");
            assert!(first.ends_with("(compat 1)"), "{arg}: {text}");
            assert!(text.contains("Commit: "), "{text}");
            assert!(text.contains("Platform: linux/"), "{text}");
        }
    }
}

#[test]
fn completion_scripts_and_the_manual_page() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = pgmi_upload(&["completion", shell], &[]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("deploy"), "{shell}");
        assert!(run.stdout.contains("overwrite"), "{shell}");
    }
    let run = pgmi_upload(&["completion", "tcsh"], &[]);
    assert_eq!(run.code, 2);

    let run = pgmi_upload(&["man"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with(".ie") || run.stdout.contains(".TH"));
    assert!(run.stdout.contains("deploy"));

    let dir = tempfile::tempdir().unwrap();
    let run = pgmi_upload(&["man", "--dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deploy_page = std::fs::read_to_string(dir.path().join("pgmi-upload-deploy.1")).unwrap();
    assert!(deploy_page.contains("overwrite"));
    assert!(deploy_page.contains("sslrootcert"));
}

#[test]
fn every_command_help_shows_examples() {
    for command in [
        &["deploy", "--help"][..],
        &["bundle", "--help"],
        &["info", "--help"],
        &["metadata", "validate", "--help"],
        &["metadata", "plan", "--help"],
        &["metadata", "scaffold", "--help"],
        &["completion", "--help"],
    ] {
        let run = pgmi_upload(command, &[]);
        assert_eq!(run.code, 0, "{command:?}");
        assert!(
            run.stdout.contains("Examples:"),
            "{command:?}: {}",
            run.stdout
        );
    }
}

#[test]
fn no_arguments_print_the_help_and_succeed() {
    let run = pgmi_upload(&[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Usage:"), "{}", run.stdout);
    assert!(run.stdout.contains("deploy"));
}

#[test]
fn usage_errors_exit_2() {
    let project = project();
    for args in [
        &["deploy", path(&project), "--no-such-flag"][..],
        &["deploy"],
        &["no-such-command"],
        &["deploy", path(&project), "extra-positional"],
    ] {
        let run = pgmi_upload(args, &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
}

/// A deploy that sleeps on the server; returns the child and its unique application name.
fn start_sleeping_deploy(
    project: &Project,
    db: &str,
    extra: &[&str],
) -> (std::process::Child, String) {
    let app = format!("pgmi_sleep_{}_{}", std::process::id(), db);
    let mut cmd = Command::new(binary());
    cmd.args(["deploy", path(project), "-d", db, "--session", "portable"])
        .args(extra)
        .env("PGAPPNAME", &app)
        .env_remove("PGMI_CONNECTION_STRING")
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (cmd.spawn().expect("start pgmi-upload"), app)
}

fn sleeping_statements(app: &str) -> i64 {
    connect("postgres")
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity
              WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
            &[&app],
        )
        .unwrap()
        .get(0)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn signals_cancel_the_running_statement_and_exit_130() {
    let project = Project::with_deploy("SELECT pg_catalog.pg_sleep(60);\n");
    for signal in ["INT", "TERM"] {
        let db = TestDb::empty(&format!("sig_{signal}"));
        let (child, app) = start_sleeping_deploy(&project, &db.name, &["--json"]);
        wait_until("the statement runs", || sleeping_statements(&app) == 1);
        let pid = child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["exitCode"], 130);
        // The statement was cancelled on the server, not left running.
        wait_until("the statement is gone", || sleeping_statements(&app) == 0);
    }
}

#[test]
fn timeout_cancels_the_statement_and_exits_16() {
    let project = Project::with_deploy("SELECT pg_catalog.pg_sleep(60);\n");
    let db = TestDb::empty("timeout16");
    let start = Instant::now();
    let (child, app) = start_sleeping_deploy(&project, &db.name, &["--timeout", "2s", "--json"]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(16), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("--timeout 2s expired"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["exitCode"], 16);
    assert_eq!(json["status"], "failed");
    wait_until("the statement is gone", || sleeping_statements(&app) == 0);
}

#[test]
fn the_secret_check_of_every_run_has_teeth() {
    let leaked = std::panic::catch_unwind(|| {
        let run = Run {
            code: 0,
            stdout: String::new(),
            stderr: "notice: tok-9f8e7d6c\n".to_string(),
        };
        assert_no_secret_in(
            &run,
            &["deploy", ".", "--param", "api_token=tok-9f8e7d6c"],
            &[],
        );
    });
    assert!(
        leaked.is_err(),
        "the runner must refuse output holding a secret"
    );
}

#[test]
fn secrets_echoed_by_the_server_are_redacted() {
    // deploy.sql prints a secret-looking parameter; a failing CREATE ROLE makes the server
    // echo its PASSWORD literal in the error's LINE excerpt.
    let project = Project::with_deploy(
        "DO $$ BEGIN RAISE NOTICE 'token is %', current_setting('pgmi.api_token'); END $$;\n\
         DO $$ BEGIN RAISE NOTICE 'colour is %', current_setting('pgmi.colour'); END $$;\n\
         COMMIT;\n\
         CREATE ROLE pgmi_never LOGIN PASSWORD 'pw-''quoted''-77' NOSUCHOPTION;\n",
    );
    let db = TestDb::unnamed("secret_echo");
    for json in [false, true] {
        let mut extra = vec![
            "--session",
            "portable",
            "--param",
            "api_token=tok-9f8e7d6c",
            "--param",
            "colour=shown-1234",
        ];
        if json {
            extra.push("--json");
        }
        // The runner itself asserts that tok-9f8e7d6c appears nowhere.
        let run = deploy(&project, &db.name, &extra);
        assert_eq!(run.code, 13, "{}", run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains("token is [redacted]"), "{all}");
        assert!(
            all.contains("colour is shown-1234"),
            "not secret by name: {all}"
        );
        assert!(!all.contains("quoted"), "role password echoed: {all}");
        assert!(all.contains("PASSWORD '[redacted]'"), "{all}");
    }
}

#[test]
fn control_characters_from_the_server_are_escaped() {
    let project = Project::with_deploy(
        "DO $$ BEGIN RAISE NOTICE '%', 'red' || chr(27) || '[31m' || chr(7); END $$;\n",
    );
    let db = TestDb::unnamed("ctl_chars");
    let run = deploy(&project, &db.name, &["--session", "portable"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(run.stderr.contains("red\\x1b[31m\\x07"), "{}", run.stderr);
}
