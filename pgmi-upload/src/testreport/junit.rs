//! JUnit XML, in the shape CI servers read (Jenkins, GitLab, GitHub test reporters):
//! one `<testsuites>`, one `<testsuite name="pgmi">` per `CALL pgmi_test()` (`id` counts
//! from 0, as in Ant's schema), one `<testcase>` per counted step (every test, and a
//! fixture that failed), with `classname` = the step's directory and `time` in seconds.
//! A failure carries `message` (the server's message) and `type` (its SQLSTATE); the
//! element's text adds the DETAIL.
//!
//! Every value is escaped for XML 1.0. Characters XML 1.0 cannot carry at all, not even
//! as character references (C0 controls except tab, newline and carriage return; U+FFFE,
//! U+FFFF), are written as the visible text `#xHH`, as `pytest --junitxml` does; a report
//! with them would otherwise be rejected by every XML parser.

use crate::testresults::{suites, totals, TestStep};

pub fn render(steps: &[TestStep]) -> String {
    let all = totals(steps);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"pgmi\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{}\">\n",
        all.run,
        all.failed,
        seconds(all.duration_us)
    ));
    let suites = suites(steps);
    if suites.is_empty() {
        // The deploy stopped before any test ran: still one (empty) suite, so report
        // readers that require a suite accept the file.
        out.push_str(&suite_open(0, &[]));
        out.push_str("/>\n");
    }
    for (id, suite) in suites.iter().enumerate() {
        out.push_str(&suite_open(id, suite));
        let cases: Vec<&TestStep> = suite.iter().filter(|s| s.counted()).collect();
        if cases.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        for step in cases {
            out.push_str(&testcase(step));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// `  <testsuite …` without the closing `>` or `/>`.
fn suite_open(id: usize, suite: &[TestStep]) -> String {
    let t = totals(suite);
    format!(
        "  <testsuite name=\"pgmi\" id=\"{id}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{}\"",
        t.run,
        t.failed,
        seconds(t.duration_us)
    )
}

fn testcase(step: &TestStep) -> String {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        attr(&step.directory),
        attr(&step.path),
        seconds(step.duration_us)
    );
    if step.passed {
        return format!("{open}/>\n");
    }
    let message = crate::redact::redact_secrets(step.message.as_deref().unwrap_or("failed"));
    let kind = step
        .sqlstate
        .as_deref()
        .map(|code| format!(" type=\"{}\"", attr(code)))
        .unwrap_or_default();
    format!(
        "{open}>\n      <failure message=\"{}\"{kind}>{}</failure>\n    </testcase>\n",
        attr(&message),
        text(&step.failure_text())
    )
}

/// Microseconds → seconds with millisecond precision (the usual JUnit resolution),
/// rounding half up in integers so the text never depends on float rounding.
fn seconds(duration_us: i64) -> String {
    let ms = duration_us.max(0).saturating_add(500) / 1000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Escape for an attribute value (double-quoted). Tab, newline and carriage return become
/// character references, because attribute-value normalisation would turn them into spaces.
fn attr(value: &str) -> String {
    escape(value, true)
}

/// Escape for element text. `>` is escaped too, so `]]>` cannot appear.
fn text(value: &str) -> String {
    escape(value, false)
}

fn escape(value: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            // A literal CR would be read back as a newline, in text as well.
            '\r' => out.push_str("&#13;"),
            c if illegal_in_xml(c) => out.push_str(&format!("#x{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Not in XML 1.0's `Char` production (surrogates cannot occur in a Rust `str`).
fn illegal_in_xml(c: char) -> bool {
    matches!(u32::from(c), 0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0xFFFE | 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testresults::fixtures::{failed, fixture_failure, one_failure, step};
    use crate::testresults::StepKind;

    #[test]
    fn golden_one_failure() {
        assert_eq!(
            render(&one_failure()),
            include_str!("../../tests/golden/one_failure.junit.xml")
        );
    }

    #[test]
    fn golden_empty() {
        assert_eq!(
            render(&[]),
            include_str!("../../tests/golden/empty.junit.xml")
        );
    }

    #[test]
    fn golden_two_suites_with_a_failing_fixture() {
        assert_eq!(
            render(&fixture_failure()),
            include_str!("../../tests/golden/fixture_failure.junit.xml")
        );
    }

    #[test]
    fn everything_is_escaped() {
        let steps = vec![failed(
            step(1, 1, StepKind::Test, "./__test__/<a&b>\"'.sql", 1),
            "P0001",
            "bad \"x\" & <y>\u{1b}[31m\r\nline2\u{0}\u{FFFF}",
            "tab\there ]]> end",
        )];
        let xml = render(&steps);
        assert!(
            xml.contains("name=\"./__test__/&lt;a&amp;b&gt;&quot;&apos;.sql\""),
            "{xml}"
        );
        assert!(
            xml.contains(
                "message=\"bad &quot;x&quot; &amp; &lt;y&gt;#x1B[31m&#13;&#10;line2#x00#xFFFF\""
            ),
            "{xml}"
        );
        assert!(
            xml.contains(">bad \"x\" &amp; &lt;y&gt;#x1B[31m&#13;\nline2#x00#xFFFF\nDETAIL: tab\there ]]&gt; end</failure>"),
            "{xml}"
        );
        assert!(!xml.chars().any(illegal_in_xml));
    }
}
