//! Secret redaction and terminal safety for everything pgmi-upload prints (README "Output").
//!
//! Rewritten, case-insensitively:
//! * `password=<v>` and `sslpassword=<v>`, where `<v>` is `'…'`, `"…"` or runs to white
//!   space, `;` or `&` → `password=[redacted]`;
//! * role DDL as the server echoes it in `LINE n:` excerpts and contexts:
//!   `PASSWORD '<v>'` (also `E'…'`, doubled quotes inside) → `PASSWORD '[redacted]'`;
//! * `scheme://user:<pw>@host` → `scheme://user:[redacted]@host`; the password runs to
//!   the **last** `@` of the URI, because an unencoded `@` inside a password is common;
//! * every value registered with [`register_secret`]: the connection's password and TLS key
//!   passphrase, and the values of parameters whose names look secret (`password`, `token`,
//!   `key`, …) — wherever they appear, including text the server echoes from `deploy.sql`.
//!   Values shorter than 4 characters are not registered: redacting every `1` or `ab` would
//!   garble the output and hide little.
//!
//! Then control characters other than newline and tab are escaped (`\x1b`, `\r`), so a
//! server message or a file name cannot move the cursor, recolour or retitle the terminal.
//!
//! Redaction is applied when text is printed (stderr lines and the `--json` envelope), so
//! no error path can bypass it.

use std::sync::Mutex;

const REDACTED: &str = "[redacted]";

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Shortest value [`register_secret`] accepts.
const MIN_SECRET_CHARS: usize = 4;

/// Make `value` a secret: from now on [`redact`] replaces it wherever it appears.
pub fn register_secret(value: &str) {
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Rewrite every password the text contains, then escape control characters: for text
/// that reaches a terminal or a log.
pub fn redact(text: &str) -> String {
    escape_controls(&redact_secrets(text))
}

/// Only the secrets, for formats that escape control characters their own way (the JUnit
/// and TAP reports).
pub fn redact_secrets(text: &str) -> String {
    let mut text = redact_uri_passwords(&redact_ddl_passwords(&redact_keyword_passwords(text)));
    for secret in SECRETS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    text
}

/// Control characters other than `\n` and `\t` as visible escapes.
fn escape_controls(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{n:x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `PASSWORD '…'` / `PASSWORD E'…'` in role DDL → `PASSWORD '[redacted]'`.
fn redact_ddl_passwords(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(found) = lower[search_from..].find("password") {
        let mut cursor = search_from + found + "password".len();
        search_from = cursor;
        let after = &text[cursor..];
        let spaces = after.len() - after.trim_start().len();
        if spaces == 0 {
            continue;
        }
        cursor += spaces;
        let bytes = text.as_bytes();
        let escaped =
            matches!(bytes.get(cursor), Some(b'e' | b'E')) && bytes.get(cursor + 1) == Some(&b'\'');
        if escaped {
            cursor += 1;
        }
        if bytes.get(cursor) != Some(&b'\'') {
            continue;
        }
        // The literal ends at a quote that is not doubled (nor backslash-escaped in E'').
        let mut end = cursor + 1;
        loop {
            match bytes.get(end) {
                None => break,
                Some(b'\\') if escaped => end += 2,
                Some(b'\'') if bytes.get(end + 1) == Some(&b'\'') => end += 2,
                Some(b'\'') => {
                    end += 1;
                    break;
                }
                Some(_) => end += 1,
            }
        }
        let end = end.min(text.len());
        out.push_str(&text[copied..cursor]);
        out.push_str("'[redacted]'");
        copied = end;
        search_from = end;
    }
    out.push_str(&text[copied..]);
    out
}

fn redact_keyword_passwords(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(found) = lower[search_from..].find("password") {
        let key_start = search_from + found;
        let mut cursor = key_start + "password".len();
        search_from = cursor;
        // `sslpassword` is covered by the same match; any other word ending in
        // "password" (e.g. `mypassword=`) is also a secret by name, so it is redacted too.
        let after_key = &text[cursor..];
        let spaces = after_key.len() - after_key.trim_start().len();
        cursor += spaces;
        if !text[cursor..].starts_with('=') {
            continue;
        }
        cursor += 1;
        let after_eq = &text[cursor..];
        let spaces = after_eq.len() - after_eq.trim_start_matches([' ', '\t']).len();
        cursor += spaces;
        let value_end = value_end(text, cursor);
        if value_end == cursor {
            continue;
        }
        out.push_str(&text[copied..cursor]);
        out.push_str(REDACTED);
        copied = value_end;
        search_from = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// End (exclusive) of a `key=value` value starting at `start`.
fn value_end(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    match rest.chars().next() {
        Some(quote @ ('\'' | '"')) => match rest[1..].find(quote) {
            Some(close) => start + 1 + close + 1,
            None => text.len(),
        },
        _ => {
            start
                + rest
                    .find(|c: char| c.is_whitespace() || c == ';' || c == '&')
                    .unwrap_or(rest.len())
        }
    }
}

fn redact_uri_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(found) = text[search_from..].find("://") {
        let authority_start = search_from + found + 3;
        search_from = authority_start;
        // The URI token ends at white space or a quote; its userinfo ends at the last `@`
        // before the path (or, when the password holds a `/`, simply the last `@`).
        let token = &text[authority_start..];
        let token_len = token
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(token.len());
        let token = &token[..token_len];
        let Some(at) = token.rfind('@') else { continue };
        let userinfo = &token[..at];
        let Some(colon) = userinfo.find(':') else {
            continue;
        };
        let password_start = authority_start + colon + 1;
        let password_end = authority_start + at;
        if password_start == password_end {
            continue;
        }
        out.push_str(&text[copied..password_start]);
        out.push_str(REDACTED);
        copied = password_end;
        search_from = password_end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn keyword_passwords() {
        assert_eq!(
            redact("host=x password=s3cret user=u"),
            "host=x password=[redacted] user=u"
        );
        assert_eq!(redact("PASSWORD='a b c' x"), "PASSWORD=[redacted] x");
        assert_eq!(redact(r#"password="q;w" end"#), "password=[redacted] end");
        assert_eq!(redact("sslpassword=k"), "sslpassword=[redacted]");
        assert_eq!(
            redact("Password = p;Host=h"),
            "Password = [redacted];Host=h"
        );
        assert_eq!(
            redact("?password=abc&sslmode=disable"),
            "?password=[redacted]&sslmode=disable"
        );
    }

    #[test]
    fn uri_passwords_run_to_the_last_at() {
        assert_eq!(
            redact("postgresql://alice:p@ss@db.example:5432/app"),
            "postgresql://alice:[redacted]@db.example:5432/app"
        );
        assert_eq!(
            redact("failed: postgres://bob:pw@h/db and more"),
            "failed: postgres://bob:[redacted]@h/db and more"
        );
    }

    #[test]
    fn leaves_safe_text_alone() {
        for text in [
            "postgresql://alice@host/db",
            "postgresql://host/db",
            "the password was wrong",
            "password authentication failed for user \"bob\"",
            "https://example.com/a:b",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn role_ddl_passwords() {
        assert_eq!(
            redact("LINE 1: CREATE ROLE app LOGIN PASSWORD 'it''s s3cret' VALID UNTIL 'x';"),
            "LINE 1: CREATE ROLE app LOGIN PASSWORD '[redacted]' VALID UNTIL 'x';"
        );
        assert_eq!(
            redact("alter user x with encrypted password E'a\\'b' ;"),
            "alter user x with encrypted password E'[redacted]' ;"
        );
        assert_eq!(redact("PASSWORD NULL"), "PASSWORD NULL");
    }

    #[test]
    fn registered_secrets_are_replaced_anywhere() {
        super::register_secret("tok-5f4e3d2c");
        super::register_secret("abc"); // too short to register
        assert_eq!(
            redact("raise: value tok-5f4e3d2c here, abc stays"),
            "raise: value [redacted] here, abc stays"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            redact("a\u{1b}[31mred\u{7}\rb\nc\td"),
            "a\\x1b[31mred\\x07\\rb\nc\td"
        );
    }

    #[test]
    fn unicode_is_preserved() {
        assert_eq!(
            redact("ünïcode password=ä€ ok"),
            "ünïcode password=[redacted] ok"
        );
    }
}
