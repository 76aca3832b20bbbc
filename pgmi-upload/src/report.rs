//! What the user reads: the `pgmi: error:` block, the summary line and the `--json`
//! envelope (all described in README "Output").
//!
//! Data goes to stdout (only the JSON envelope); everything else to stderr. Every text that
//! may carry server or user input passes through `redact` here, at the last moment.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde::Serialize;

use crate::duration::seconds_2dp;
use crate::exit::{Exit, Failure};
use crate::redact::redact;
use crate::testresults::{self, TestStep, TestsJson};

/// `[VERBOSE] …` on stderr when `--verbose` is on.
pub fn verbose(enabled: bool, line: &str) {
    if enabled {
        eprintln!("[VERBOSE] {}", redact(line));
    }
}

/// The error block: `pgmi: error: …`, then DETAIL / HINT / WHERE, then the location.
pub fn error_block(failure: &Failure) -> String {
    let mut out = format!("pgmi: error: {}\n", redact(&failure.message));
    for (label, value) in [
        ("DETAIL", &failure.detail),
        ("HINT", &failure.hint),
        ("WHERE", &failure.where_),
    ] {
        if let Some(value) = value {
            out.push_str(&format!("{label}: {}\n", redact(value)));
        }
    }
    if let Some(loc) = &failure.location {
        out.push_str(&format!(
            "LOCATION: deploy.sql line {}, column {}\n",
            loc.line, loc.column
        ));
        // The excerpt is redacted too (a role's PASSWORD literal, a secret parameter's
        // value); the caret follows the redacted text.
        let label = format!("LINE {}: ", loc.line);
        out.push_str(&format!("{label}{}\n", redact(&loc.source_line)));
        let before: String = loc
            .source_line
            .chars()
            .take(loc.column.saturating_sub(1))
            .collect();
        let indent = label.chars().count() + redact(&before).chars().count();
        out.push_str(&format!("{}^\n", " ".repeat(indent)));
    }
    out
}

/// How the summary line marks success and failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Green ✓ / red ✗ (stderr is a terminal and `NO_COLOR` is unset).
    Color,
    /// `ok` / `FAILED`.
    Plain,
}

impl Style {
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if no_color || !std::io::stderr().is_terminal() {
            Style::Plain
        } else {
            Style::Color
        }
    }

    fn icon(self, ok: bool) -> &'static str {
        match (self, ok) {
            (Style::Color, true) => "\x1b[32m✓\x1b[0m",
            (Style::Color, false) => "\x1b[31m✗\x1b[0m",
            (Style::Plain, true) => "ok",
            (Style::Plain, false) => "FAILED",
        }
    }
}

/// What the summary line and the envelope report about a deploy that was started.
#[derive(Debug, Clone, Default)]
pub struct DeployReport {
    pub database: String,
    pub files_loaded: i64,
    pub elapsed: Duration,
    /// Execution units; zero until deploy.sql was split.
    pub units: usize,
    pub units_committed: usize,
    /// The connection was lost during a unit with no word from the server
    /// (`executionMode: unknown`).
    pub outcome_unknown: bool,
    /// `CALL pgmi_test(...)` forms rewritten into `CALL pg_temp.pgmi_test(...)`.
    pub test_macros: usize,
    /// `extension` or `portable`, once chosen.
    pub session: Option<&'static str>,
    /// Rows of `pg_temp.pgmi_test_results()`, read after deploy.sql ended; empty when no
    /// test ran.
    pub tests: Vec<TestStep>,
    /// Retried units and the lock wait that ended the deploy (`locks/`).
    pub locks: crate::locks::LockReport,
    /// The estimated locks against the lock table, when the warning was printed.
    pub lock_estimate: Option<crate::locks::budget::Report>,
    /// Wall-clock time per phase (`timings.rs`).
    pub phases: Vec<(&'static str, Duration)>,
}

/// `<icon> <db>: <n> files loaded in <s>s` or `<icon> <db>: failed after <s>s[ (unit k of n
/// failed; j earlier unit(s) already committed)]`.
pub fn summary_line(report: &DeployReport, failure: Option<&Failure>, style: Style) -> String {
    let elapsed = seconds_2dp(report.elapsed);
    match failure {
        None => {
            let mut line = format!(
                "{} {}: {} files loaded",
                style.icon(true),
                report.database,
                report.files_loaded
            );
            if report.test_macros > 0 {
                line.push_str(&format!(", {} test macro(s) expanded", report.test_macros));
            }
            line.push_str(&format!(" in {elapsed}"));
            line
        }
        Some(_) => {
            let mut line = format!(
                "{} {}: failed after {elapsed}",
                style.icon(false),
                report.database
            );
            // Execution stopped in the tail (a failure, the deadline or Ctrl-C).
            if report.units_committed > 0 && report.units_committed < report.units {
                line.push_str(&format!(
                    " (unit {} of {} failed; {} earlier unit(s) already committed)",
                    report.units_committed + 1,
                    report.units,
                    report.units_committed
                ));
            }
            line
        }
    }
}

/// The `--json` envelope. Fields are skipped when empty; keys come out sorted because the
/// value is re-collected into a `BTreeMap` (independent of serde_json's `preserve_order`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: &'static str,
    exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_loaded: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_macros: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_units: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    units_committed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    where_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    script: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    script_expanded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tests: Option<TestsJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attempts: Vec<crate::locks::Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_wait: Option<crate::locks::LockWait>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_estimate: Option<crate::locks::budget::Report>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    phases_ms: BTreeMap<&'static str, f64>,
}

/// Build the envelope text (2-space indent, sorted keys, trailing newline).
pub fn json_envelope(
    report: Option<&DeployReport>,
    failure: Option<&Failure>,
    exit: Exit,
) -> String {
    let mut env = Envelope {
        status: if failure.is_none() {
            "success"
        } else {
            "failed"
        },
        exit_code: exit.code(),
        ..Envelope::default()
    };
    if let Some(r) = report {
        env.database = Some(r.database.clone());
        env.files_loaded = Some(r.files_loaded);
        env.test_macros = Some(r.test_macros);
        env.session = r.session;
        env.duration_ms = Some(r.elapsed.as_millis() as u64);
        if r.units > 0 {
            env.execution_units = Some(r.units);
            env.units_committed = Some(r.units_committed);
        }
        env.tests = testresults::json(&r.tests);
        env.attempts = r.locks.attempts.clone();
        env.lock_estimate = r.lock_estimate;
        env.phases_ms = r
            .phases
            .iter()
            .map(|(name, d)| (*name, (d.as_secs_f64() * 1e4).round() / 10.0))
            .collect();
    }
    if let Some(f) = failure {
        let non_empty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(redact);
        env.error = Some(redact(&f.message));
        env.sqlstate = f.sqlstate.clone();
        env.detail = non_empty(&f.detail);
        env.hint = non_empty(&f.hint);
        env.where_ = non_empty(&f.where_);
        env.failed_file = failed_file(&f.message);
        if let Some(r) = report {
            env.lock_wait = r.locks.final_wait.clone();
        }
        if let Some(r) = report {
            // Set only when execution of deploy.sql began and stopped before the end.
            if r.units_committed < r.units {
                env.execution_mode = Some(if r.outcome_unknown {
                    "unknown"
                } else if r.units_committed == 0 {
                    "atomic"
                } else {
                    "psql"
                });
            }
        }
        if let Some(loc) = &f.location {
            env.script = Some("deploy.sql");
            env.source_line = Some(redact(&loc.source_line)).filter(|s| !s.is_empty());
            env.line = Some(loc.line);
            env.column = Some(loc.column);
            // Rewritten macros change the text of their own line only (the line count is
            // kept), but the position was computed on the rewritten text.
            env.script_expanded = Some(report.is_some_and(|r| r.test_macros > 0));
        }
    }
    let value = serde_json::to_value(&env).unwrap_or(serde_json::Value::Null);
    let sorted: BTreeMap<String, serde_json::Value> = match value {
        serde_json::Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let mut text = serde_json::to_string_pretty(&sorted).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// The file named by `Failed in <path>` (the basic template's migration loop and the test
/// runner word their errors this way), when the path has a SQL extension.
pub fn failed_file(message: &str) -> Option<String> {
    let start = message.find("Failed in ")? + "Failed in ".len();
    let rest = &message[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ':')
        .unwrap_or(rest.len());
    let path = &rest[..end];
    pgmi_core::path::is_sql_file(path).then(|| path.to_string())
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ScriptLocation;

    fn exec_failure() -> Failure {
        Failure {
            exit: Exit::ExecutionFailed,
            message: "execution failed: ERROR: syntax error at or near \"SELEC\" (SQLSTATE 42601)"
                .into(),
            sqlstate: Some("42601".into()),
            detail: None,
            hint: Some(String::new()),
            where_: None,
            location: Some(ScriptLocation {
                line: 1,
                column: 1,
                source_line: "SELEC 1;".into(),
            }),
        }
    }

    #[test]
    fn error_block_with_caret() {
        let text = error_block(&exec_failure());
        assert_eq!(
            text,
            "pgmi: error: execution failed: ERROR: syntax error at or near \"SELEC\" (SQLSTATE 42601)\n\
             HINT: \n\
             LOCATION: deploy.sql line 1, column 1\n\
             LINE 1: SELEC 1;\n        ^\n"
        );
    }

    #[test]
    fn summary_lines() {
        let report = DeployReport {
            database: "app".into(),
            files_loaded: 3,
            elapsed: Duration::from_millis(1234),
            units: 4,
            units_committed: 2,
            ..DeployReport::default()
        };
        assert_eq!(
            summary_line(&report, None, Style::Plain),
            "ok app: 3 files loaded in 1.23s"
        );
        assert_eq!(
            summary_line(&report, Some(&exec_failure()), Style::Plain),
            "FAILED app: failed after 1.23s (unit 3 of 4 failed; 2 earlier unit(s) already committed)"
        );
        let head = DeployReport {
            units_committed: 0,
            ..report.clone()
        };
        assert_eq!(
            summary_line(&head, Some(&exec_failure()), Style::Plain),
            "FAILED app: failed after 1.23s"
        );
        assert!(summary_line(&head, None, Style::Color).contains('✓'));
    }

    #[test]
    fn json_envelope_for_a_head_syntax_error() {
        let report = DeployReport {
            database: "app".into(),
            files_loaded: 0,
            elapsed: Duration::from_millis(15),
            units: 1,
            units_committed: 0,
            ..DeployReport::default()
        };
        let text = json_envelope(Some(&report), Some(&exec_failure()), Exit::ExecutionFailed);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["exitCode"], 13);
        assert_eq!(v["sqlstate"], "42601");
        assert_eq!(v["executionUnits"], 1);
        assert_eq!(v["unitsCommitted"], 0);
        assert_eq!(v["executionMode"], "atomic");
        assert_eq!(v["script"], "deploy.sql");
        assert_eq!(v["line"], 1);
        assert_eq!(v["column"], 1);
        assert_eq!(v["sourceLine"], "SELEC 1;");
        assert_eq!(v["scriptExpanded"], false);
        assert_eq!(v["testMacros"], 0);
        assert!(v.get("tests").is_none(), "no test results, no tests key");
        assert!(v.get("hint").is_none(), "empty hint is omitted");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .starts_with("execution failed: ERROR:"));
        // Keys appear sorted, with a 2-space indent.
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .map(|l| l.split('"').next().unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn json_envelope_carries_the_test_counts() {
        let report = DeployReport {
            database: "app".into(),
            units: 1,
            tests: crate::testresults::fixtures::one_failure(),
            ..DeployReport::default()
        };
        let text = json_envelope(Some(&report), Some(&exec_failure()), Exit::ExecutionFailed);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["tests"],
            serde_json::json!({"run": 3, "passed": 2, "failed": 1, "failedTest": "./__test__/auth/test_zero.sql"})
        );
        assert!(
            text.contains("\"tests\": {\n    \"failed\": 1,\n    \"failedTest\""),
            "nested keys sorted:\n{text}"
        );
    }

    #[test]
    fn json_envelope_before_the_deploy_started() {
        let f = Failure::config("database name is required");
        let v: serde_json::Value =
            serde_json::from_str(&json_envelope(None, Some(&f), Exit::InvalidConfig)).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 3);
        assert_eq!(v["exitCode"], 10);
    }

    #[test]
    fn json_envelope_lists_attempts_and_the_lock_holders() {
        let mut report = DeployReport {
            database: "app".into(),
            units: 1,
            ..DeployReport::default()
        };
        report.locks.attempts = vec![
            crate::locks::Attempt {
                unit: 1,
                sqlstate: "55P03".into(),
                wait_ms: Some(250),
            },
            crate::locks::Attempt {
                unit: 1,
                sqlstate: "55P03".into(),
                wait_ms: None,
            },
        ];
        report.locks.final_wait = Some(crate::locks::watch::sample());
        let v: serde_json::Value = serde_json::from_str(&json_envelope(
            Some(&report),
            Some(&exec_failure()),
            Exit::ExecutionFailed,
        ))
        .unwrap();
        assert_eq!(
            v["attempts"],
            serde_json::json!([{"unit": 1, "sqlstate": "55P03", "waitMs": 250}, {"unit": 1, "sqlstate": "55P03"}])
        );
        assert_eq!(v["lockWait"]["relation"], "public.orders");
        assert_eq!(v["lockWait"]["blockers"][0]["pid"], 4121);
        assert_eq!(
            v["lockWait"]["blockers"][0]["application"],
            "billing-worker"
        );
        assert_eq!(v["lockWait"]["blockers"][0]["transactionAgeMs"], 843000);
        // A success has neither key when nothing was retried.
        let ok = DeployReport::default();
        let v: serde_json::Value =
            serde_json::from_str(&json_envelope(Some(&ok), None, Exit::Success)).unwrap();
        assert!(v.get("attempts").is_none() && v.get("lockWait").is_none());
    }

    #[test]
    fn failed_file_extraction() {
        assert_eq!(
            failed_file("execution failed: ERROR: Failed in ./__test__/sub/test_c.sql: division by zero (SQLSTATE 22012)").as_deref(),
            Some("./__test__/sub/test_c.sql")
        );
        assert_eq!(
            failed_file("ERROR: Failed in ./migrations/001.psql: x").as_deref(),
            Some("./migrations/001.psql")
        );
        assert_eq!(
            failed_file("ERROR: Failed in ./migrations/002_bad.sql:3:1: syntax error").as_deref(),
            Some("./migrations/002_bad.sql")
        );
        assert_eq!(failed_file("[pgmi] Script failed: ./x.sql - boom"), None);
        assert_eq!(failed_file("Failed in ./notes.txt: x"), None);
    }

    #[test]
    fn secrets_are_redacted_in_both_outputs() {
        let mut f = Failure::new(Exit::ConnectionFailed, "bad postgres://u:hunter2@h/db");
        f.detail = Some("password=hunter2".into());
        assert!(!error_block(&f).contains("hunter2"));
        assert!(!json_envelope(None, Some(&f), Exit::ConnectionFailed).contains("hunter2"));
    }
}
