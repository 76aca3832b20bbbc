//! TAP version 13 (<https://testanything.org/tap-version-13-specification.html>).
//!
//! One stream for the whole deploy: the plan `1..N` counts every counted step (each test,
//! and a fixture that failed), numbered in the order they ran. With several
//! `CALL pgmi_test()` suites, a `# suite <n>` comment line starts each one. Every line is
//! `ok <n> - <path> # time=<ms>ms`; a failure is `not ok` followed by a YAML diagnostic
//! block whose strings are always double-quoted YAML scalars, so no message can break the
//! block or the stream.

use crate::redact::redact_secrets as redact;
use crate::testresults::{format_ms, suites, StepKind, TestStep};

pub fn render(steps: &[TestStep]) -> String {
    let counted: Vec<&TestStep> = steps.iter().filter(|s| s.counted()).collect();
    let several_suites = suites(steps).len() > 1;
    let mut out = format!("TAP version 13\n1..{}\n", counted.len());
    let mut suite = None;
    for (index, step) in counted.iter().enumerate() {
        if several_suites && suite != Some(step.suite) {
            out.push_str(&format!("# suite {}\n", step.suite));
            suite = Some(step.suite);
        }
        out.push_str(&format!(
            "{} {} - {} # time={}\n",
            if step.passed { "ok" } else { "not ok" },
            index + 1,
            description(&step.path),
            format_ms(step.duration_us)
        ));
        if !step.passed {
            out.push_str(&diagnostics(step));
        }
    }
    out
}

fn diagnostics(step: &TestStep) -> String {
    let message = redact(step.message.as_deref().unwrap_or("failed"));
    let mut out = format!(
        "  ---\n  message: {}\n  severity: fail\n",
        yaml_quoted(&message)
    );
    let mut data = Vec::new();
    if let Some(code) = &step.sqlstate {
        data.push(format!("    sqlstate: {}\n", yaml_quoted(code)));
    }
    if let Some(detail) = step.detail.as_deref().filter(|d| !d.is_empty()) {
        data.push(format!("    detail: {}\n", yaml_quoted(&redact(detail))));
    }
    if step.kind == StepKind::Fixture {
        data.push("    step: \"fixture\"\n".to_string());
    }
    if !data.is_empty() {
        out.push_str("  data:\n");
        out.push_str(&data.concat());
    }
    out.push_str("  ...\n");
    out
}

/// A test description: `#` would start a directive and `\` escapes it (TAP 13); control
/// characters, a newline above all, would end the line.
fn description(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '#' => out.push_str("\\#"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// A YAML double-quoted scalar. Only YAML's printable set stays literal; line breaks
/// (including NEL, U+2028 and U+2029) and everything else are escaped.
fn yaml_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if yaml_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                if code <= 0xFF {
                    out.push_str(&format!("\\x{code:02X}"));
                } else if code <= 0xFFFF {
                    out.push_str(&format!("\\u{code:04X}"));
                } else {
                    out.push_str(&format!("\\U{code:08X}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// YAML 1.2 `c-printable` minus the characters that are line breaks or a BOM.
fn yaml_printable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x20..=0x7E | 0xA0..=0x2027 | 0x202A..=0xD7FF | 0xE000..=0xFEFE | 0xFF00..=0xFFFD | 0x10000..=0x10FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testresults::fixtures::{failed, fixture_failure, one_failure, step};

    #[test]
    fn golden_one_failure() {
        assert_eq!(
            render(&one_failure()),
            include_str!("../../tests/golden/one_failure.tap")
        );
    }

    #[test]
    fn golden_two_suites_with_a_failing_fixture() {
        assert_eq!(
            render(&fixture_failure()),
            include_str!("../../tests/golden/fixture_failure.tap")
        );
    }

    #[test]
    fn empty_plan() {
        assert_eq!(render(&[]), "TAP version 13\n1..0\n");
    }

    #[test]
    fn nothing_breaks_the_stream() {
        assert_eq!(
            description("./__test__/a #1\\b\n.sql"),
            "./__test__/a \\#1\\\\b\\n.sql"
        );
        assert_eq!(
            yaml_quoted("a \"q\" \\ \u{1b}\u{85}\u{2028}\u{feff}\u{1F600} é\r\n\t"),
            "\"a \\\"q\\\" \\\\ \\x1B\\x85\\u2028\\uFEFF\u{1F600} é\\r\\n\\t\""
        );
        let steps = vec![failed(
            step(1, 1, StepKind::Test, "./t.sql", 1),
            "P0001",
            "line1\n  ...\nnot ok 99",
            "",
        )];
        let tap = render(&steps);
        assert_eq!(
            tap.lines().filter(|l| l.starts_with("not ok")).count(),
            1,
            "{tap}"
        );
        assert_eq!(tap.lines().filter(|l| *l == "  ...").count(), 1, "{tap}");
    }
}
