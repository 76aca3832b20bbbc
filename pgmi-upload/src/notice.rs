//! Server notices on stderr, as they arrive (README "Output").
//!
//! The bare message (no `NOTICE:` prefix), then `DETAIL: …` and `HINT: …` lines. With
//! `--verbose` each line starts with `[<seconds since start, 2 decimals>s] `. The `postgres`
//! crate's default callback only logs through `log`, which nobody sees, so every connection
//! is opened with [`callback`]. Notices are written unbuffered, under the stderr lock, so a
//! multi-line notice is never interleaved with our own progress lines.

use std::io::Write;
use std::time::Instant;

use postgres::error::DbError;

use crate::redact::redact;

/// The notice callback for `postgres::Config::notice_callback`.
pub fn callback(start: Instant, verbose: bool) -> impl Fn(DbError) + Send + Sync + 'static {
    move |notice: DbError| {
        let prefix = if verbose {
            format!("[{:.2}s] ", start.elapsed().as_secs_f64())
        } else {
            String::new()
        };
        let text = render(&notice, &prefix);
        // A closed stderr must not abort the deploy; the notice is lost, nothing else.
        let mut err = std::io::stderr().lock();
        crate::progress::clear(&mut err);
        let _ = err.write_all(text.as_bytes());
    }
}

fn render(notice: &DbError, prefix: &str) -> String {
    lines(notice.message(), notice.detail(), notice.hint(), prefix)
}

fn lines(message: &str, detail: Option<&str>, hint: Option<&str>, prefix: &str) -> String {
    let mut out = format!("{prefix}{}\n", redact(message));
    if let Some(detail) = detail {
        out.push_str(&format!("{prefix}DETAIL: {}\n", redact(detail)));
    }
    if let Some(hint) = hint {
        out.push_str(&format!("{prefix}HINT: {}\n", redact(hint)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lines;

    #[test]
    fn bare_message_then_detail_and_hint() {
        assert_eq!(lines("hello", None, None, ""), "hello\n");
        assert_eq!(
            lines("m", Some("d"), Some("h"), "[1.50s] "),
            "[1.50s] m\n[1.50s] DETAIL: d\n[1.50s] HINT: h\n"
        );
    }
}
