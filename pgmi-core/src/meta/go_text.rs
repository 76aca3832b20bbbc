//! The few Go standard-library text rules whose output reaches pgmi's metadata error messages
//! (`strings.TrimSpace`, `strconv.ParseBool` as `encoding/xml` applies it to attributes, and
//! `strconv.Quote` / `%q`). Reproduced so messages match the original pgmi's byte for byte.

/// Decodes the UTF-8 character at the start of `b`, like Go's `utf8.DecodeRune`: `None` for an
/// invalid or truncated sequence (Go's `RuneError` of width 1).
pub(super) fn decode_rune(b: &[u8]) -> Option<(char, usize)> {
    let head = &b[..b.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    let c = valid.chars().next()?;
    Some((c, c.len_utf8()))
}

/// Decodes the character that ends `b`, like Go's `utf8.DecodeLastRune`.
fn decode_last_rune(b: &[u8]) -> Option<(char, usize)> {
    let floor = b.len().saturating_sub(4);
    let start = (floor..b.len()).rev().find(|&i| b[i] & 0xC0 != 0x80)?;
    let (c, n) = decode_rune(&b[start..])?;
    (start + n == b.len()).then_some((c, n))
}

/// Go's `unicode.IsSpace`, which is exactly Unicode `White_Space` = Rust's `is_whitespace`.
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `strings.TrimSpace` over bytes: returns the number of leading bytes removed and the
/// trimmed slice. Undecodable bytes are not white space and stop the trim.
pub(super) fn trim_space(b: &[u8]) -> (usize, &[u8]) {
    let mut start = 0;
    while let Some((c, n)) = decode_rune(&b[start..]) {
        if !is_space(c) {
            break;
        }
        start += n;
    }
    let mut end = b.len();
    while end > start {
        match decode_last_rune(&b[start..end]) {
            Some((c, n)) if is_space(c) => end -= n,
            _ => break,
        }
    }
    (start, &b[start..end])
}

/// How `encoding/xml` stores an attribute into a `bool`: an empty value is `false`, anything
/// else goes through `strconv.ParseBool` after `strings.TrimSpace`.
pub(super) fn parse_bool_attr(value: &[u8]) -> Result<bool, String> {
    if value.is_empty() {
        return Ok(false);
    }
    match trim_space(value).1 {
        b"1" | b"t" | b"T" | b"TRUE" | b"true" | b"True" => Ok(true),
        b"0" | b"f" | b"F" | b"FALSE" | b"false" | b"False" => Ok(false),
        other => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote(other)
        )),
    }
}

/// Go's `strconv.Quote` (and `%q`) of a byte string: double quotes, Go escapes, undecodable
/// bytes as `\xNN`.
pub(crate) fn quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    let mut i = 0;
    while i < b.len() {
        let Some((c, n)) = decode_rune(&b[i..]) else {
            out.push_str(&format!("\\x{:02x}", b[i]));
            i += 1;
            continue;
        };
        i += n;
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            _ if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            _ if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            _ => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`. Exact for ASCII. Above ASCII it rejects controls, the space
/// separators other than U+0020, the line/paragraph separators, the common format characters
/// and private-use/noncharacter code points, and accepts the rest; Go additionally rejects
/// unassigned code points, which would need Unicode tables for a case no metadata author
/// meets.
fn is_print(c: char) -> bool {
    let u = u32::from(c);
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format_or_private = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    let noncharacter = (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE;
    !(format_or_private || noncharacter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bool_like_go() {
        for t in ["1", "t", "T", "TRUE", "true", "True", " true ", "\u{a0}1\n"] {
            assert_eq!(parse_bool_attr(t.as_bytes()), Ok(true), "{t:?}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False", ""] {
            assert_eq!(parse_bool_attr(f.as_bytes()), Ok(false), "{f:?}");
        }
        assert_eq!(
            parse_bool_attr(b"yes").unwrap_err(),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            parse_bool_attr(b" ").unwrap_err(),
            "strconv.ParseBool: parsing \"\": invalid syntax"
        );
        assert_eq!(
            parse_bool_attr(b"tRUE").unwrap_err(),
            "strconv.ParseBool: parsing \"tRUE\": invalid syntax"
        );
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            quote("é\u{0}\u{7f}\t\u{85}\u{a0}\u{200b}\u{1F600}".as_bytes()),
            "\"é\\x00\\x7f\\t\\u0085\\u00a0\\u200b\u{1F600}\""
        );
        assert_eq!(quote(b"\xff\xc3"), r#""\xff\xc3""#);
        assert_eq!(
            quote("\u{e000}\u{10ffff}".as_bytes()),
            r#""\ue000\U0010ffff""#
        );
    }

    #[test]
    fn trim_space_like_go() {
        assert_eq!(
            trim_space(" \u{3000}a b\u{85}\n".as_bytes()),
            (4, &b"a b"[..])
        );
        assert_eq!(trim_space(b"  \xff "), (2, &b"\xff"[..]));
        assert_eq!(trim_space(b"   "), (3, &b""[..]));
        assert_eq!(trim_space(b""), (0, &b""[..]));
    }
}
