//! The first line of another session's query, fit to print: string, dollar-quoted and
//! numeric literals become `?`, comments disappear.
//!
//! `pg_stat_activity.query` of a blocking session can hold anything its application sent,
//! customer data included, and the deploy's output ends up in CI logs. Strings, comments and
//! dollar bodies are found with pgmi-core's lexer (the scanner the splitter and checksums
//! use), so a `'` inside a comment or a `--` inside a string is read the way PostgreSQL reads
//! it. The query may be cut short by `track_activity_query_size`: an unterminated string
//! runs to the end and is still replaced. Numbers are replaced only where they stand alone
//! (not `t1` or `$2`), so identifiers and parameter markers survive.

use pgmi_core::lexer::{pieces, PieceKind};

/// At most this many characters of the redacted first line are kept: enough to recognise a
/// statement, short enough for one line of an error message.
const MAX_CHARS: usize = 120;

/// The redacted first non-blank line of `query`.
pub fn first_line(query: &str) -> String {
    let redacted = literals(query);
    let line = redacted
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let squeezed = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let squeezed = squeezed.trim_end_matches([';', ' ']).to_string();
    if squeezed.chars().count() > MAX_CHARS {
        let cut: String = squeezed.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        squeezed
    }
}

/// `query` with every literal replaced by `?` and every comment by a space.
pub fn literals(query: &str) -> String {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    for piece in pieces(bytes) {
        // Piece boundaries sit on ASCII bytes, so they are char boundaries.
        let text = &query[piece.range.clone()];
        match piece.kind {
            PieceKind::Code => numbers(text, &mut out),
            PieceKind::QuotedIdent { .. } => out.push_str(text),
            PieceKind::String { .. } | PieceKind::Dollar { .. } => {
                // `E'…'`, `B'…'`, `X'…'`, `U&'…'`: drop the prefix with the literal.
                strip_literal_prefix(&mut out);
                out.push('?');
            }
            PieceKind::LineComment | PieceKind::BlockComment { .. } => out.push(' '),
        }
    }
    out
}

/// Remove a one-letter string prefix (`E`, `B`, `X`, `N`, `U&`) that ends `out`, when it is
/// a whole word.
fn strip_literal_prefix(out: &mut String) {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut probe = out.clone();
    if probe.ends_with("U&") || probe.ends_with("u&") {
        probe.truncate(probe.len() - 2);
    } else if probe.ends_with(['E', 'e', 'B', 'b', 'X', 'x', 'N', 'n']) {
        probe.truncate(probe.len() - 1);
    } else {
        return;
    }
    if !probe.ends_with(is_word) {
        *out = probe;
    }
}

/// Copy code, replacing numeric literals (`42`, `3.14`, `.5`, `1e-3`) that do not belong to
/// an identifier or a `$n` parameter with `?`.
fn numbers(code: &str, out: &mut String) {
    let chars: Vec<char> = code.chars().collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()));
        let after_word = i > 0 && (is_word(chars[i - 1]) || chars[i - 1] == '.');
        if starts_number && !after_word {
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                let exponent_sign = (d == '+' || d == '-') && matches!(chars[i - 1], 'e' | 'E');
                if d.is_ascii_alphanumeric() || d == '.' || d == '_' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push('?');
        } else {
            out.push(c);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_become_question_marks() {
        assert_eq!(
            first_line("UPDATE orders SET note = 'card 4242' WHERE id = 17 AND t1.x > 2.5e-3"),
            "UPDATE orders SET note = ? WHERE id = ? AND t1.x > ?"
        );
        assert_eq!(
            first_line("select E'it\\'s', $1, x'ff', $$body 99$$, \"Col 7\""),
            "select ?, $1, ?, ?, \"Col 7\""
        );
    }

    #[test]
    fn comments_vanish_and_only_the_first_line_stays() {
        assert_eq!(
            first_line("  -- secret 'x'\n\nSELECT 'a\nb' /* 123 */ FROM t\nWHERE y = 2"),
            "SELECT ? FROM t"
        );
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn a_string_cut_short_is_still_hidden() {
        assert_eq!(
            first_line("INSERT INTO t VALUES ('secr"),
            "INSERT INTO t VALUES (?"
        );
    }

    #[test]
    fn long_lines_are_shortened() {
        let q = format!("SELECT {}", "a, ".repeat(100));
        let line = first_line(&q);
        assert!(line.ends_with('…'));
        assert_eq!(line.chars().count(), MAX_CHARS + 1);
    }
}
