//! Rewriting the original pgmi's `CALL pgmi_test(…)` macro forms in `deploy.sql`, so scripts
//! written for it keep working (docs/testing.md, "How `CALL pgmi_test()` reaches the
//! procedure").
//!
//! The original pgmi expanded `CALL pgmi_test(…)` client-side into generated SQL. Here every
//! session has a real procedure `pg_temp.pgmi_test(p_pattern, p_callback)`, but PostgreSQL
//! never looks up procedures in `pg_temp` unless the call is qualified, so the uploader
//! rewrites exactly the statements the original pgmi treated as the macro into a qualified call.
//! Everything the original pgmi left alone (forms it did not recognise) reaches the server
//! verbatim, where it fails the same way it did there.
//!
//! Detection is the original pgmi's case-insensitive Go regex, run over the lexer's mask
//! ([`crate::lexer::mask_bytes`], PostgreSQL's scanning rules, so a literal or comment is
//! what the server and the splitter call one) with `FindAllIndex` semantics (spaces for
//! readability):
//!
//! ```text
//! (^|[^A-Za-z0-9_]) CALL \s+ (pg_temp\.)? pgmi_test \s* \( \s* ( '[^']*' | NULL )?
//!     ( \s*,\s* '[^']*' )? \s* \) \s* ;?
//! ```
//!
//! It is implemented by hand: after the prefix every step is forced (each optional part is
//! taken iff it is present, because what follows it can never start the same way), so a
//! single forward scan from each `CALL` finds the same match as Go's leftmost-first engine.
//! Go-specific details kept on purpose:
//!
//! * `\s` is `[\t\n\f\r ]`; `^` is the start of the text only.
//! * The prefix consumes one character (a whole multi-byte character too), and after a match
//!   ending at byte `e` the next search starts at `e`, so `…();CALL pgmi_test();` rewrites only
//!   the first call, and a macro right after one without `;` (whose trailing white space was
//!   consumed) is not matched.
//! * Go's case folding is Unicode simple folding: `s` also matches `ſ` (U+017F) and `k` also
//!   matches `K` (U+212A, Kelvin sign), and both are excluded from the prefix class.
//! * On the mask, comments are white space, so `CALL /* x */ pgmi_test()` matches and a
//!   comment after a `;`-less macro is part of its trailing white space; string literal
//!   interiors are blank, so `'[^']*'` matches exactly one literal without `''` in it.
//!
//! Rewrite: each match becomes `CALL pg_temp.pgmi_test(<P>, <C>);` where `<P>`/`<C>` are the
//! literals cut from the original script (quotes included, no unescaping) or `NULL`. Then one
//! `\n` for every newline the replaced span had before its trailing white space and that the
//! literals do not carry themselves, then, if the original had no `;`, the consumed trailing
//! white space verbatim.
//!
//! Invariants: the output has exactly as many `\n` as the input, every line after a macro's
//! last line is byte-identical, text outside matches is copied byte for byte, and with no
//! match the output is the input. Every cut is at an ASCII byte of the mask that is the same
//! byte in the script, or at the end of a mask white-space run (the next byte is code or a
//! kept quote/tag, hence a char boundary), so slicing never panics. Time is linear: a failed
//! attempt only scans white space, masked literal interiors and the fixed words, none of which
//! can start another `CALL`.

use std::ops::Range;

use crate::lexer;

/// The result of rewriting a deploy.sql.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The script with every macro replaced by a qualified call.
    pub text: String,
    /// Number of macros rewritten (the original pgmi's `testMacros`).
    pub count: usize,
}

/// Rewrites every `CALL pgmi_test(…)` macro of `script` (see the module doc).
pub fn rewrite(script: &str) -> Rewritten {
    let mask = lexer::mask_bytes(script.as_bytes());
    let found = find_all(&mask);
    if found.is_empty() {
        return Rewritten {
            text: script.to_owned(),
            count: 0,
        };
    }
    let mut text = String::with_capacity(script.len() + 32 * found.len());
    let mut copied = 0;
    for m in &found {
        text.push_str(&script[copied..m.start]);
        push_replacement(&mut text, script, m);
        copied = m.end;
    }
    text.push_str(&script[copied..]);
    Rewritten {
        text,
        count: found.len(),
    }
}

/// One regex match, prefix excluded; all offsets index both the mask and the script.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Macro {
    /// The `C` of `CALL`.
    start: usize,
    /// Just past the closing `)`.
    close: usize,
    /// Just past the match: after the `;`, or after the trailing white space.
    end: usize,
    semicolon: bool,
    /// `'…'` pattern literal; `None` when absent or written `NULL`.
    pattern: Option<Range<usize>>,
    /// `'…'` callback literal, if any.
    callback: Option<Range<usize>>,
}

fn push_replacement(out: &mut String, script: &str, m: &Macro) {
    let literal = |r: &Option<Range<usize>>| r.clone().map_or("NULL", |r| &script[r]);
    let call = format!(
        "CALL pg_temp.pgmi_test({}, {});",
        literal(&m.pattern),
        literal(&m.callback)
    );
    // Newlines between the tokens (white space and comments, which the mask showed as spaces)
    // are dropped with them; the literals keep theirs, so only the difference is padded.
    let tokens_end = if m.semicolon { m.end } else { m.close };
    let padding = newlines(&script[m.start..tokens_end]).saturating_sub(newlines(&call));
    out.push_str(&call);
    out.extend(std::iter::repeat_n('\n', padding));
    if !m.semicolon {
        out.push_str(&script[m.close..m.end]);
    }
}

fn newlines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

/// All matches, as Go's `FindAllIndex` reports them: leftmost first, non-overlapping, each
/// search starting where the previous match ended.
fn find_all(mask: &[u8]) -> Vec<Macro> {
    let mut found = Vec::new();
    let mut from = 0;
    let mut i = 0;
    while i < mask.len() {
        if matches!(mask[i], b'C' | b'c') && prefix_ok(mask, i, from) {
            if let Some(m) = match_at(mask, i) {
                i = m.end;
                from = m.end;
                found.push(m);
                continue;
            }
        }
        i += 1;
    }
    found
}

/// `(^|[^A-Za-z0-9_])` before `at`, with the prefix character starting at or after `from`.
fn prefix_ok(mask: &[u8], at: usize, from: usize) -> bool {
    if at == 0 {
        return true;
    }
    // Step back to the first byte of the character that ends at `at`.
    let mut start = at - 1;
    while start > 0 && at - start < 4 && mask[start] & 0xC0 == 0x80 {
        start -= 1;
    }
    if start < from {
        return false;
    }
    let prev = &mask[start..at];
    match prev {
        [b] => !(b.is_ascii_alphanumeric() || *b == b'_'),
        // The characters Go's case folding adds to `[A-Za-z0-9_]`: `ſ` and the Kelvin sign.
        _ => prev != LONG_S && prev != KELVIN,
    }
}

/// `ſ` (U+017F), which Go's `(?i)` folds with `s`.
const LONG_S: &[u8] = "\u{17F}".as_bytes();
/// `K` (U+212A), which Go's `(?i)` folds with `k`.
const KELVIN: &[u8] = "\u{212A}".as_bytes();

/// The match whose `CALL` starts at `start`, if the rest of the regex matches there.
fn match_at(mask: &[u8], start: usize) -> Option<Macro> {
    let mut c = Cursor { mask, pos: start };
    c.word("call")?;
    if c.space() == 0 {
        return None;
    }
    // `(pg_temp\.)?`: if present it must be taken (`pgmi_test` cannot start with `pg_t`).
    let before_schema = c.pos;
    if c.word("pg_temp").and_then(|()| c.byte(b'.')).is_none() {
        c.pos = before_schema;
    }
    c.word("pgmi_test")?;
    c.space();
    c.byte(b'(')?;
    c.space();
    let pattern = match c.peek() {
        Some(b'\'') => Some(c.literal()?),
        Some(b'N' | b'n') => {
            c.word("null")?;
            None
        }
        _ => None,
    };
    c.space();
    let callback = if c.peek() == Some(b',') {
        c.pos += 1;
        c.space();
        Some(c.literal()?)
    } else {
        None
    };
    c.space();
    c.byte(b')')?;
    let close = c.pos;
    c.space();
    let semicolon = c.byte(b';').is_some();
    Some(Macro {
        start,
        close,
        end: c.pos,
        semicolon,
        pattern,
        callback,
    })
}

/// A forward scanner over the mask; each step either consumes and succeeds or fails.
struct Cursor<'a> {
    mask: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.mask.get(self.pos).copied()
    }

    /// Consumes `\s*` (Go's `[\t\n\f\r ]`) and returns how many bytes it took.
    fn space(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'\t' | b'\n' | b'\x0C' | b'\r' | b' ')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    /// Consumes `word` (lower-case ASCII) case-insensitively, with Go's extra folds.
    fn word(&mut self, word: &str) -> Option<()> {
        for w in word.bytes() {
            let rest = &self.mask[self.pos..];
            let fold = match w {
                b's' => LONG_S,
                b'k' => KELVIN,
                _ => &[],
            };
            if rest.first().is_some_and(|b| b.to_ascii_lowercase() == w) {
                self.pos += 1;
            } else if !fold.is_empty() && rest.starts_with(fold) {
                self.pos += fold.len();
            } else {
                return None;
            }
        }
        Some(())
    }

    /// Consumes `'[^']*'` and returns its range, quotes included.
    fn literal(&mut self) -> Option<Range<usize>> {
        let start = self.pos;
        self.byte(b'\'')?;
        let len = self.mask[self.pos..].iter().position(|&b| b == b'\'')?;
        self.pos += len + 1;
        Some(start..self.pos)
    }
}

#[cfg(test)]
mod tests;
