//! Per-step test results kept by the extension (`<schema>.pgmi_test_results()`), and the
//! test summary printed on stderr and put in the `--json` envelope.
//!
//! Invariants:
//! * Rows come from the server in `(suite, ordinal)` order; nothing here re-sorts them, so
//!   every rendering (summary, JUnit, TAP) lists steps in the order they ran.
//! * A step is *counted* when it is a test, or when it is a fixture that failed: fixtures
//!   set up state and are not tests, but a failing fixture is the reason its suite stopped,
//!   so it is reported as the failure everywhere (summary, `--json`, JUnit, TAP).
//! * Timings are the server's `duration_us` (wall time of the script in the backend), never
//!   client-side measurements, so they exclude network latency.
//! * Fetching is best effort: an extension too old to have `pgmi_test_results()`, or any
//!   error while reading it, yields no rows and the deploy's outcome is unchanged.

pub(crate) mod fetch;

use serde::Serialize;

pub use fetch::fetch;

use crate::duration::seconds_2dp;
use crate::redact::redact;

/// What a plan step was. The server reports `'fixture'` or `'test'`; anything else (a newer
/// server's step type) is treated like a fixture: shown only when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Fixture,
    Test,
}

/// One row of `pgmi_test_results()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestStep {
    /// 1 for the first `CALL pgmi_test()` of the load, 2 for the second, ...
    pub suite: i32,
    pub ordinal: i32,
    pub kind: StepKind,
    pub path: String,
    pub directory: String,
    pub passed: bool,
    pub duration_us: i64,
    pub sqlstate: Option<String>,
    pub message: Option<String>,
    pub detail: Option<String>,
}

impl TestStep {
    /// Tests always; fixtures only when they failed (module invariant).
    pub fn counted(&self) -> bool {
        self.kind == StepKind::Test || !self.passed
    }

    /// The failure text for reports: the message, then `DETAIL: …` when there is one. The
    /// server sends an empty DETAIL as `''`; that is treated as none.
    pub fn failure_text(&self) -> String {
        let mut text = crate::redact::redact_secrets(self.message.as_deref().unwrap_or("failed"));
        if let Some(detail) = self.detail.as_deref().filter(|d| !d.is_empty()) {
            text.push_str("\nDETAIL: ");
            text.push_str(&crate::redact::redact_secrets(detail));
        }
        text
    }
}

/// Counts over the counted steps; the duration covers every step, fixtures included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub run: usize,
    pub passed: usize,
    pub failed: usize,
    pub duration_us: i64,
}

pub fn totals<'a>(steps: impl IntoIterator<Item = &'a TestStep>) -> Totals {
    let mut t = Totals::default();
    for step in steps {
        t.duration_us = t.duration_us.saturating_add(step.duration_us.max(0));
        if step.counted() {
            t.run += 1;
            if step.passed {
                t.passed += 1;
            } else {
                t.failed += 1;
            }
        }
    }
    t
}

/// Split the rows into suites, in order (rows arrive grouped by suite).
pub fn suites(steps: &[TestStep]) -> Vec<&[TestStep]> {
    steps.chunk_by(|a, b| a.suite == b.suite).collect()
}

/// `3200` → `3.2ms`: the per-test time of the verbose summary and the TAP report.
/// Integer arithmetic, rounding half up, so goldens do not depend on float rounding.
pub fn format_ms(duration_us: i64) -> String {
    let tenths = duration_us.max(0).saturating_add(50) / 100;
    format!("{}.{}ms", tenths / 10, tenths % 10)
}

/// The `tests` object of the `--json` envelope (fields in sorted order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestsJson {
    pub failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_test: Option<String>,
    pub passed: usize,
    pub run: usize,
}

/// `None` when no test step ran (the envelope then has no `tests` key).
pub fn json(steps: &[TestStep]) -> Option<TestsJson> {
    if steps.is_empty() {
        return None;
    }
    let t = totals(steps);
    Some(TestsJson {
        failed: t.failed,
        failed_test: steps.iter().find(|s| !s.passed).map(|s| s.path.clone()),
        passed: t.passed,
        run: t.run,
    })
}

/// The human test summary for stderr; empty when there are no rows.
///
/// ```text
/// Tests: 12 passed, 1 failed (13 run) in 0.42s
///   ok 3.2ms ./__test__/a.sql                      (--verbose only, one per test)
///   FAILED ./__test__/x.sql: division by zero (SQLSTATE 22012)
/// ```
pub fn summary(steps: &[TestStep], verbose: bool) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let t = totals(steps);
    let suites = suites(steps).len();
    let scope = if suites > 1 {
        format!("{} run, {suites} suites", t.run)
    } else {
        format!("{} run", t.run)
    };
    let elapsed = seconds_2dp(std::time::Duration::from_micros(
        u64::try_from(t.duration_us).unwrap_or(0),
    ));
    let mut out = format!(
        "Tests: {} passed, {} failed ({scope}) in {elapsed}\n",
        t.passed, t.failed
    );
    for step in steps.iter().filter(|s| s.counted()) {
        if !step.passed {
            out.push_str(&failed_line(step));
        } else if verbose {
            out.push_str(&format!(
                "  ok {} {}\n",
                format_ms(step.duration_us),
                redact(&step.path)
            ));
        }
    }
    out
}

/// `  FAILED <path>[ (fixture)]: <message>[ (SQLSTATE <code>)]`. The server words the
/// message `Failed in <path>: <original>`; the prefix repeats the path, so it is dropped.
fn failed_line(step: &TestStep) -> String {
    let message = step.message.as_deref().unwrap_or("failed");
    let prefix = format!("Failed in {}: ", step.path);
    let message = message.strip_prefix(&prefix).unwrap_or(message);
    let fixture = if step.kind == StepKind::Test {
        ""
    } else {
        " (fixture)"
    };
    let code = step
        .sqlstate
        .as_deref()
        .map(|c| format!(" (SQLSTATE {c})"))
        .unwrap_or_default();
    format!(
        "  FAILED {}{fixture}: {}{code}\n",
        redact(&step.path),
        redact(message)
    )
}

#[cfg(test)]
pub mod fixtures {
    //! Synthetic rows shared by the rendering tests.
    use super::{StepKind, TestStep};

    pub fn step(suite: i32, ordinal: i32, kind: StepKind, path: &str, us: i64) -> TestStep {
        let directory = match path.rfind('/') {
            Some(end) => path[..=end].to_string(),
            None => String::new(),
        };
        TestStep {
            suite,
            ordinal,
            kind,
            path: path.to_string(),
            directory,
            passed: true,
            duration_us: us,
            sqlstate: None,
            message: None,
            detail: None,
        }
    }

    pub fn failed(mut step: TestStep, sqlstate: &str, message: &str, detail: &str) -> TestStep {
        step.passed = false;
        step.sqlstate = Some(sqlstate.to_string());
        step.message = Some(message.to_string());
        step.detail = Some(detail.to_string());
        step
    }

    /// Two suites: a passing test, then a nested fixture failing with a unique violation.
    pub fn fixture_failure() -> Vec<TestStep> {
        vec![
            step(1, 2, StepKind::Test, "./__test__/a.sql", 1000),
            step(2, 1, StepKind::Fixture, "./__test__/_setup.sql", 2000),
            failed(
                step(2, 2, StepKind::Fixture, "./__test__/db/_setup.psql", 2500),
                "23505",
                "Failed in ./__test__/db/_setup.psql: duplicate key value violates unique constraint \"accounts_pkey\"",
                "Key (id)=(1) already exists.",
            ),
        ]
    }

    /// A root fixture, two passing tests, and a test failing with division by zero.
    pub fn one_failure() -> Vec<TestStep> {
        vec![
            step(1, 1, StepKind::Fixture, "./__test__/_setup.sql", 1500),
            step(1, 2, StepKind::Test, "./__test__/test_basic.sql", 3200),
            step(
                1,
                4,
                StepKind::Test,
                "./__test__/auth/test_login.sql",
                12_345,
            ),
            failed(
                step(1, 5, StepKind::Test, "./__test__/auth/test_zero.sql", 800),
                "22012",
                "Failed in ./__test__/auth/test_zero.sql: division by zero",
                "",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn summary_counts_tests_not_fixtures() {
        let steps = one_failure();
        assert_eq!(
            summary(&steps, false),
            "Tests: 2 passed, 1 failed (3 run) in 0.02s\n\
             \x20 FAILED ./__test__/auth/test_zero.sql: division by zero (SQLSTATE 22012)\n"
        );
        assert_eq!(
            summary(&steps, true),
            "Tests: 2 passed, 1 failed (3 run) in 0.02s\n\
             \x20 ok 3.2ms ./__test__/test_basic.sql\n\
             \x20 ok 12.3ms ./__test__/auth/test_login.sql\n\
             \x20 FAILED ./__test__/auth/test_zero.sql: division by zero (SQLSTATE 22012)\n"
        );
    }

    #[test]
    fn a_failing_fixture_is_the_failure() {
        let steps = vec![
            step(1, 1, StepKind::Fixture, "./__test__/_setup.sql", 10),
            failed(
                step(1, 2, StepKind::Fixture, "./__test__/auth/_setup.sql", 20),
                "42P01",
                "Failed in ./__test__/auth/_setup.sql: relation \"x\" does not exist",
                "",
            ),
        ];
        assert_eq!(
            summary(&steps, true),
            "Tests: 0 passed, 1 failed (1 run) in 0.00s\n\
             \x20 FAILED ./__test__/auth/_setup.sql (fixture): relation \"x\" does not exist (SQLSTATE 42P01)\n"
        );
        let j = json(&steps).unwrap();
        assert_eq!(j.failed_test.as_deref(), Some("./__test__/auth/_setup.sql"));
        assert_eq!((j.run, j.passed, j.failed), (1, 0, 1));
    }

    #[test]
    fn several_suites_and_no_rows() {
        let steps = vec![
            step(1, 1, StepKind::Test, "./__test__/a.sql", 1_000_000),
            step(2, 1, StepKind::Test, "./__test__/a.sql", 500_000),
        ];
        assert_eq!(
            summary(&steps, false),
            "Tests: 2 passed, 0 failed (2 run, 2 suites) in 1.50s\n"
        );
        assert_eq!(suites(&steps).len(), 2);
        assert_eq!(summary(&[], true), "");
        assert_eq!(json(&[]), None);
    }

    #[test]
    fn json_object_is_sorted_and_names_the_failed_test() {
        let text = serde_json::to_string(&json(&one_failure())).unwrap();
        assert_eq!(
            text,
            r#"{"failed":1,"failedTest":"./__test__/auth/test_zero.sql","passed":2,"run":3}"#
        );
    }

    #[test]
    fn failure_text_appends_non_empty_detail_and_redacts() {
        let mut s = failed(
            step(1, 1, StepKind::Test, "./t.sql", 1),
            "XX000",
            "bad postgres://u:hunter2@h/db",
            "password=hunter2",
        );
        assert_eq!(
            s.failure_text(),
            "bad postgres://u:[redacted]@h/db\nDETAIL: password=[redacted]"
        );
        s.detail = Some(String::new());
        assert_eq!(s.failure_text(), "bad postgres://u:[redacted]@h/db");
    }

    #[test]
    fn milliseconds() {
        assert_eq!(format_ms(3200), "3.2ms");
        assert_eq!(format_ms(0), "0.0ms");
        assert_eq!(format_ms(-5), "0.0ms");
        assert_eq!(format_ms(1_234_567), "1234.6ms");
    }
}
