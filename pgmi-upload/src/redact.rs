//! Secret redaction for everything pgmi-upload prints (reference `pgmi-cli.md` §4.8).
//!
//! Two shapes are rewritten, case-insensitively:
//! * `password=<v>` and `sslpassword=<v>`, where `<v>` is `'…'`, `"…"` or runs to white
//!   space, `;` or `&` → `password=[redacted]`;
//! * `scheme://user:<pw>@host` → `scheme://user:[redacted]@host`; the password runs to
//!   the **last** `@` of the URI, because an unencoded `@` inside a password is common.
//!
//! Redaction is applied when text is printed (stderr lines and the `--json` envelope), so
//! no error path can bypass it. The one thing it cannot know about is a secret written
//! literally into `deploy.sql`: the `LINE n:` excerpt of an error shows that line.

const REDACTED: &str = "[redacted]";

/// Rewrite every password the text contains.
pub fn redact(text: &str) -> String {
    redact_uri_passwords(&redact_keyword_passwords(text))
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
    fn unicode_is_preserved() {
        assert_eq!(
            redact("ünïcode password=ä€ ok"),
            "ünïcode password=[redacted] ok"
        );
    }
}
