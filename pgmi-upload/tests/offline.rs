//! The uploader's offline behaviour: everything that must fail (or be decided) before any
//! connection. Each deploy points at 127.0.0.1 port 1, so an unintended connection attempt
//! shows up as exit 11 instead of the expected code.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_pgmi-upload");

/// Run the binary with a clean environment (no PG* variables leak in from the host).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("USER", "tester")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pgmi-upload")
}

fn deploy(project: &Path, extra: &[&str]) -> Output {
    let path = project.to_str().unwrap();
    let mut args = vec!["deploy", path, "-h", "127.0.0.1", "-p", "1"];
    args.extend_from_slice(extra);
    run(&args, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// A valid project: deploy.sql plus one migration.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deploy.sql"), "SELECT 1;\n").unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/001.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    dir
}

#[track_caller]
fn assert_offline_failure(out: &Output, expected: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(code(out), expected, "stderr:\n{err}");
    assert!(
        err.contains(needle),
        "expected {needle:?} in stderr:\n{err}"
    );
    assert!(
        err.starts_with("pgmi: error: "),
        "one error block only:\n{err}"
    );
    assert!(
        !err.contains("Preparing session"),
        "must not connect:\n{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "stdout must stay empty without --json"
    );
}

#[test]
fn missing_project_path_exits_10() {
    let dir = tempfile::tempdir().unwrap();
    let out = deploy(&dir.path().join("nope"), &["-d", "app"]);
    assert_offline_failure(&out, 10, "does not exist");
}

#[test]
fn project_path_that_is_a_file_exits_10() {
    let p = project();
    let out = deploy(&p.path().join("deploy.sql"), &["-d", "app"]);
    assert_offline_failure(&out, 10, "is not a directory");
}

#[test]
fn missing_deploy_sql_exits_14() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.sql"), "SELECT 1;").unwrap();
    let out = deploy(dir.path(), &["-d", "app"]);
    assert_offline_failure(&out, 14, "deploy.sql not found");
}

#[test]
fn param_without_equals_exits_10() {
    let p = project();
    let out = deploy(p.path(), &["-d", "app", "--param", "novalue"]);
    assert_offline_failure(&out, 10, "key=value");
}

#[test]
fn invalid_param_key_exits_10_naming_the_key_but_not_the_value() {
    let p = project();
    for key in ["bad-key", "1abc", &"k".repeat(64)] {
        let arg = format!("{key}=SECRETVALUE");
        let out = deploy(p.path(), &["-d", "app", "--param", &arg]);
        assert_offline_failure(&out, 10, &format!("invalid parameter key '{key}'"));
        assert!(!stderr(&out).contains("SECRETVALUE"));
    }
}

#[test]
fn keys_colliding_after_lower_casing_exit_10() {
    let p = project();
    let out = deploy(
        p.path(),
        &["-d", "app", "--param", "env=a", "--param", "ENV=b"],
    );
    assert_offline_failure(&out, 10, "differ only in case");
}

#[test]
fn unreadable_params_file_exits_10() {
    let p = project();
    let missing = p.path().join("missing.env");
    let out = deploy(
        p.path(),
        &["-d", "app", "--params-file", missing.to_str().unwrap()],
    );
    assert_offline_failure(&out, 10, "could not read parameters file");
}

#[test]
fn params_file_line_errors_name_the_line() {
    let p = project();
    let file = p.path().join("p.env");
    std::fs::write(&file, "# comment\nok=1\nbroken line\n").unwrap();
    let out = deploy(
        p.path(),
        &["-d", "app", "--params-file", file.to_str().unwrap()],
    );
    assert_offline_failure(&out, 10, "line 3");
}

#[test]
fn connection_string_with_host_flag_exits_10() {
    let p = project();
    let path = p.path().to_str().unwrap();
    let out = run(
        &[
            "deploy",
            path,
            "--connection",
            "postgresql://u:hunter2@127.0.0.1:1/app",
            "-h",
            "127.0.0.1",
        ],
        &[],
    );
    assert_offline_failure(&out, 10, "cannot specify both");
    // Also when the connection string comes from the environment.
    let out = run(
        &["deploy", path, "-U", "someone", "-d", "app"],
        &[("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/app")],
    );
    assert_offline_failure(&out, 10, "cannot specify both");
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn invalid_sslmode_is_refused_offline() {
    let p = project();
    let path = p.path().to_str().unwrap();
    let out = run(
        &[
            "deploy",
            path,
            "--connection",
            "postgresql://127.0.0.1:1/app?sslmode=sometimes",
        ],
        &[],
    );
    assert_offline_failure(&out, 10, "invalid sslmode");
}

#[test]
fn missing_database_name_exits_10() {
    let p = project();
    let out = deploy(p.path(), &[]);
    assert_offline_failure(&out, 10, "database name is required");
    let err = stderr(&out);
    assert!(
        err.contains("-d") && err.contains("PGDATABASE"),
        "lists the ways:\n{err}"
    );
}

#[test]
fn nul_byte_file_exits_10_naming_it_once() {
    let p = project();
    std::fs::create_dir(p.path().join("data")).unwrap();
    std::fs::write(p.path().join("data/blob.bin"), b"GIF89a\0\0\x01").unwrap();
    let out = deploy(p.path(), &["-d", "app"]);
    assert_offline_failure(&out, 10, "./data/blob.bin");
    assert_eq!(
        stderr(&out).matches("./data/blob.bin").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn oversized_file_respects_pgmi_max_file_size() {
    let p = project();
    let path = p.path().to_str().unwrap();
    let args = ["deploy", path, "-h", "127.0.0.1", "-p", "1", "-d", "app"];
    let out = run(&args, &[("PGMI_MAX_FILE_SIZE", "5")]);
    assert_offline_failure(&out, 10, "exceeds 5-byte cap");
    let out = run(&args, &[("PGMI_MAX_FILE_SIZE", "lots")]);
    assert_offline_failure(&out, 10, "PGMI_MAX_FILE_SIZE");
}

#[test]
fn invalid_deploy_sql_exits_10() {
    let p = project();
    std::fs::write(p.path().join("deploy.sql"), b"SELECT '\xff';").unwrap();
    let out = deploy(p.path(), &["-d", "app"]);
    assert_offline_failure(&out, 10, "not valid UTF-8");
}

#[test]
fn bad_timeout_exits_10() {
    let p = project();
    for bad in ["-5s", "soon", "5"] {
        let out = deploy(p.path(), &["-d", "app", "--timeout", bad]);
        assert_offline_failure(&out, 10, "--timeout");
    }
}

#[test]
fn bad_port_exits_10() {
    let p = project();
    let path = p.path().to_str().unwrap();
    let out = run(
        &[
            "deploy",
            path,
            "-h",
            "127.0.0.1",
            "-p",
            "70000",
            "-d",
            "app",
        ],
        &[],
    );
    assert_offline_failure(&out, 10, "port");
}

#[test]
fn json_envelope_for_an_offline_failure() {
    let p = project();
    let out = deploy(p.path(), &["--json"]);
    assert_eq!(code(&out), 10);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["exitCode"], 10);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("database name is required"));
    assert!(
        v.get("database").is_none(),
        "the deploy workflow had not started"
    );
}

#[test]
fn unreachable_server_exits_11_after_all_offline_checks() {
    let p = project();
    let out = deploy(p.path(), &["-d", "app", "--param", "env=ci"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 11, "{err}");
    assert!(err.contains("pg_isready"), "{err}");
    assert!(err.contains("FAILED app: failed after"), "{err}");
}

#[test]
fn dash_h_is_host_and_help_is_long_only() {
    let out = run(&["deploy", "--help"], &[]);
    assert_eq!(code(&out), 0);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--host"), "{help}");
    assert!(help.contains("PGPASSWORD"), "{help}");
    // `-h` needs a value: it is --host, not help.
    let out = run(&["deploy", ".", "-h"], &[]);
    assert_eq!(code(&out), 2);
    // Usage errors exit 2.
    assert_eq!(code(&run(&["deploy"], &[])), 2);
    assert_eq!(code(&run(&["frobnicate"], &[])), 2);
}

#[test]
fn version_command_and_flag() {
    let out = run(&["version"], &[]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pgmi-upload "));
    let out = run(&["--version"], &[]);
    assert_eq!(code(&out), 0);
}

#[test]
fn bad_test_report_values_exit_10_before_connecting() {
    let p = project();
    for (value, needle) in [
        ("xml=r.xml", "unknown report format \"xml\""),
        ("junit", "expected FORMAT=FILE"),
        ("tap=", "the file name is empty"),
    ] {
        let out = deploy(p.path(), &["-d", "app", "--test-report", value]);
        assert_offline_failure(&out, 10, needle);
    }
}

#[test]
fn test_reports_are_written_when_the_deploy_fails_before_any_test() {
    let p = project();
    let out_dir = tempfile::tempdir().unwrap();
    let junit = out_dir.path().join("reports/junit.xml");
    let tap = out_dir.path().join("report.tap");
    let out = deploy(
        p.path(),
        &[
            "-d",
            "app",
            "--test-report",
            &format!("junit={}", junit.display()),
            "--test-report",
            &format!("tap={}", tap.display()),
        ],
    );
    assert_eq!(code(&out), 11, "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("Tests:"),
        "no results, no test summary"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit report written");
    assert!(
        xml.contains("<testsuite name=\"pgmi\" id=\"0\" tests=\"0\""),
        "{xml}"
    );
    assert_eq!(
        std::fs::read_to_string(&tap).unwrap(),
        "TAP version 13\n1..0\n"
    );
}

#[test]
fn an_unwritable_report_does_not_hide_the_deploy_failure() {
    let p = project();
    let out_dir = tempfile::tempdir().unwrap();
    // A directory cannot be replaced by the report file.
    let taken = out_dir.path().join("taken.xml");
    std::fs::create_dir(&taken).unwrap();
    let out = deploy(
        p.path(),
        &[
            "-d",
            "app",
            "--test-report",
            &format!("junit={}", taken.display()),
        ],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 11, "the deploy's own failure decides: {err}");
    assert!(
        err.contains("pgmi: warning: could not write the JUnit test report"),
        "{err}"
    );
    let warning = err.find("pgmi: warning:").unwrap();
    let summary = err.find("FAILED app: failed after").unwrap();
    assert!(warning < summary, "the summary line stays last:\n{err}");
}
