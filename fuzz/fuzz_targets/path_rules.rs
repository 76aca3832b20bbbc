//! Path rules: normalisation, the derived `_pgmi_source` columns, the CHECK constraints,
//! the dunder rule, test-directory depth and Go quoting.
//!
//! Invariants checked (input: any bytes, decoded lossily to text):
//! * `normalize` output starts with `./`, holds no `\` and no `//`, and is a fixed point;
//! * `derive`'s columns agree with each other (parts join back to the path, the directory
//!   plus the name is the path, depth is parts − 2, the parent folder is the part before the
//!   name, the extension is a `.`-plus-alphanumeric suffix of the name);
//! * a derived row can only break the name, depth and test-path constraints, and a row
//!   that passes has depth ≤ 100 and a non-empty name;
//! * `check_dunder` matches a straightforward re-implementation of the original pgmi's regex
//!   scan `/__([^/]+)__/`, and any segment it reports is a dunder segment of the path;
//! * `go_quote` output is printable, quoted, and unquotes back to the input;
//! * `is_sql_file` and `is_fixture` match their definitions;
//! * `check_limits` accepts exactly the paths within the byte and depth caps, and
//!   `abbreviate` keeps short paths and cuts long ones to a head and tail of the original.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The allocator with the single-allocation cap.
use pgmi_fuzz as _;
use pgmi_core::{limits, path};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let raw: &str = &raw;

    let norm = path::normalize(raw);
    assert!(norm.starts_with("./"));
    assert!(!norm.contains('\\') && !norm.contains("//"));
    assert_eq!(path::normalize(&norm), norm, "normalize is not idempotent");

    let sp = path::derive(raw);
    assert_eq!(sp.path, norm);
    assert_eq!(sp.path_parts.join("/"), sp.path);
    assert_eq!(sp.path_parts[0], ".");
    assert_eq!(sp.depth as usize + 2, sp.path_parts.len());
    assert_eq!(format!("{}{}", sp.directory, sp.name), sp.path);
    assert!(sp.directory.ends_with('/') && !sp.name.contains('/'));
    assert_eq!(sp.extension, path::extension_of(&sp.name));
    assert!(sp.name.ends_with(sp.extension.as_str()));
    if !sp.extension.is_empty() {
        assert!(sp.extension.starts_with('.') && sp.extension.len() >= 2);
        assert!(sp.extension[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    match &sp.parent_folder_name {
        None => assert_eq!(sp.depth, 0),
        Some(p) => assert_eq!(p, &sp.path_parts[sp.path_parts.len() - 2]),
    }
    match path::check_source_row(&sp) {
        Ok(()) => {
            assert!(sp.depth <= path::MAX_DEPTH && !sp.name.is_empty());
            assert!(!path::is_test_path(&sp.path));
        }
        Err(v) => {
            assert!(
                matches!(
                    v.constraint,
                    "chk_name_format"
                        | "chk_name_no_whitespace_only"
                        | "chk_depth_reasonable"
                        | "chk_path_is_not_test"
                ),
                "a derived row broke {} for {:?}",
                v.constraint,
                sp.path
            );
            assert_eq!(v.path, sp.path);
            let _ = v.to_string();
        }
    }

    let dunder = path::check_dunder(raw);
    assert_eq!(dunder, reference_dunder(raw), "check_dunder differs from the regex scan");
    if let Err(seg) = &dunder {
        assert!(seg.len() >= 5 && seg.starts_with("__") && seg.ends_with("__"));
        assert!(raw.contains(&format!("/{seg}/")));
    }

    // Test-directory helpers on the directory of the normalised path.
    let dir = path::directory_of(&norm);
    assert!(norm.starts_with(dir));
    assert_eq!(format!("{dir}{}", path::file_name_of(&norm)), norm);
    let depth = path::test_directory_depth(dir);
    assert!(depth >= 0);
    if !path::is_test_path(dir) {
        assert_eq!(depth, 0);
    }

    let lower = raw.to_ascii_lowercase();
    assert_eq!(
        path::is_sql_file(raw),
        path::SQL_EXTENSIONS.iter().any(|e| lower.ends_with(e))
    );
    assert_eq!(
        path::is_fixture(raw),
        lower == "_setup.sql" || lower == "_setup.psql"
    );
    let _ = path::is_excluded(raw);

    let rel = raw.strip_prefix("./").unwrap_or(raw);
    let within = rel.len() <= limits::MAX_PATH_BYTES
        && rel.bytes().filter(|&b| b == b'/').count() <= limits::MAX_PATH_DEPTH;
    assert_eq!(path::check_limits(raw).is_ok(), within);
    if let Err(e) = path::check_limits(raw) {
        let _ = e.to_string();
    }
    let short = path::abbreviate(raw);
    let chars = raw.chars().count();
    if short.as_ref() != raw {
        assert!(short.chars().count() < chars && short.chars().count() <= 181);
        assert!(
            short
                .match_indices('…')
                .any(|(i, e)| raw.starts_with(&short[..i]) && raw.ends_with(&short[i + e.len()..])),
            "an abbreviation is not a head and a tail of the path around an ellipsis"
        );
    }

    let quoted = path::go_quote(raw);
    assert!(quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'));
    assert!(!quoted.chars().any(char::is_control), "go_quote left a control character");
    assert_eq!(unquote(&quoted).as_deref(), Some(raw), "go_quote does not round-trip");
});

/// The original pgmi's check, written as the regex engine runs it: find the leftmost match of
/// `/__([^/]+)__/` at or after `pos`, test its group, resume after the match.
fn reference_dunder(p: &str) -> Result<(), String> {
    let b = p.as_bytes();
    let mut pos = 0;
    'scan: while pos < b.len() {
        for i in pos..b.len() {
            if b[i] != b'/' {
                continue;
            }
            // `[^/]+` cannot cross a '/', so the candidate group ends at the next '/'.
            let Some(len) = b[i + 1..].iter().position(|&c| c == b'/') else {
                break 'scan;
            };
            let seg = &b[i + 1..i + 1 + len];
            if seg.len() >= 5 && seg.starts_with(b"__") && seg.ends_with(b"__") {
                let group = &seg[2..seg.len() - 2];
                if group != b"test" && group != b"tests" {
                    return Err(String::from_utf8_lossy(seg).into_owned());
                }
                pos = i + 1 + len + 1;
                continue 'scan;
            }
        }
        break;
    }
    Ok(())
}

/// Inverse of Go's `%q` for the escapes `go_quote` emits.
fn unquote(q: &str) -> Option<String> {
    let inner = q.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<char> {
            let digits: String = chars.by_ref().take(n).collect();
            (digits.len() == n).then_some(())?;
            char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
        };
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            // Go's %q writes a non-printable character above U+FFFF as \UXXXXXXXX.
            'U' => hex(&mut chars, 8)?,
            _ => return None,
        });
    }
    Some(out)
}
