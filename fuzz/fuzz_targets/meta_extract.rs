//! `<pgmi-meta>` extraction: comment search, the XML decoder and validation.
//!
//! Invariants checked (input: any bytes, decoded lossily to text):
//! * a file naming neither `pgmi-meta` nor `pgmi:meta` has no metadata;
//! * an accepted block satisfies the validation rules (non-nil id, no blank sort key, no
//!   whitespace-only description) and survives a round trip: rendering it as a fresh
//!   `<pgmi-meta>` comment (text escaped) and extracting that gives the same metadata;
//! * an error's message names the file and contains its hint; an XML syntax error has a
//!   line, and its file line lies inside the file;
//! * prepending a newline changes nothing but the file line of a syntax error (+1);
//! * the result is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The allocator with the single-allocation cap.
use pgmi_fuzz as _;
use pgmi_core::meta::{self, MetaErrorKind, Metadata};

const PATH: &str = "./fuzz.sql";

fuzz_target!(|data: &[u8]| {
    let content = String::from_utf8_lossy(data);
    let content: &str = &content;
    let result = meta::extract(PATH, content);
    assert_eq!(meta::extract(PATH, content), result, "extract is not deterministic");

    if !content.contains("pgmi-meta") && !content.contains("pgmi:meta") {
        assert_eq!(result, Ok(None));
    }

    match &result {
        Ok(None) => {}
        Ok(Some(m)) => {
            assert!(!m.id.is_nil());
            assert!(m.sort_keys.iter().all(|k| !k.trim().is_empty()));
            assert!(m.description.is_empty() || !m.description.trim().is_empty());
            if let Some(rendered) = render(m) {
                let again = meta::extract(PATH, &rendered);
                assert_eq!(again.as_ref().ok(), Some(&Some(m.clone())), "round trip of {rendered:?}");
            }
        }
        Err(e) => {
            assert_eq!(e.path, PATH);
            assert!(e.message.contains(PATH), "the message does not name the file");
            if let Some(hint) = &e.hint {
                assert!(e.message.contains(hint.as_str()));
            }
            assert!(e.message.contains(e.reason.trim_end()));
            let lines = 1 + content.bytes().filter(|&b| b == b'\n').count();
            match e.kind {
                MetaErrorKind::XmlSyntax => {
                    let line = e.line.expect("a syntax error has a line");
                    let file_line = e.file_line.expect("a syntax error has a file line");
                    assert!(line >= 1 && file_line >= line && file_line <= lines);
                }
                _ => assert!(e.line.is_none() && e.file_line.is_none()),
            }
        }
    }

    // A leading newline shifts lines, nothing else.
    let shifted = meta::extract(PATH, &format!("\n{content}"));
    match (&result, shifted) {
        (Ok(a), Ok(b)) => assert_eq!(*a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.reason, b.reason);
            assert_eq!(a.line, b.line);
            assert_eq!(a.file_line.map(|l| l + 1), b.file_line);
        }
        (a, b) => panic!("a leading newline changed the outcome: {a:?} vs {b:?}"),
    }
});

/// Renders `m` as a canonical metadata comment, or `None` when it would exceed the size cap.
fn render(m: &Metadata) -> Option<String> {
    let mut xml = format!("<pgmi-meta id=\"{}\" idempotent=\"{}\">", m.id, m.idempotent);
    if !m.description.is_empty() {
        xml.push_str(&format!("<description>{}</description>", escape(&m.description)));
    }
    if !m.sort_keys.is_empty() {
        xml.push_str("<sortKeys>");
        for k in &m.sort_keys {
            xml.push_str(&format!("<key>{}</key>", escape(k)));
        }
        xml.push_str("</sortKeys>");
    }
    xml.push_str("</pgmi-meta>");
    (xml.len() <= meta::MAX_METADATA_BYTES).then(|| format!("/*{xml}*/\nSELECT 1;\n"))
}

/// XML-escapes text; `*` and `/` too, so the text can never close or open a comment, and
/// `\r` as a reference, because a literal one would be normalised to `\n`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' => out.push_str("&#42;"),
            '/' => out.push_str("&#47;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}
