//! Splitting `deploy.sql` into execution units (contract §7.2) and mapping PostgreSQL error
//! positions back to lines (§7.7).
//!
//! PostgreSQL runs a multi-statement simple query inside one implicit transaction block, so
//! statements such as `CREATE INDEX CONCURRENTLY` cannot run from a script sent as one
//! message. The rule, as in the reference:
//!
//! * the **head** is everything through the first top-level transaction terminator
//!   (`COMMIT`/`END`/`ROLLBACK`/`ABORT`, optionally `WORK`/`TRANSACTION`, then end of statement
//!   or `AND [NO] CHAIN`) — one unit, atomic;
//! * every top-level statement after it is its own unit (psql-like autocommit);
//! * no terminator, or only white space/comments after it → one unit, byte-identical to the
//!   script. An empty script has zero units (nothing to send).
//!
//! Statements are found on the lexer's mask ([`crate::lexer::mask_bytes`]), so `;`, parentheses
//! and keywords inside strings, comments, quoted identifiers and dollar bodies are invisible.
//! "Top level" means parenthesis depth 0 (the depth may go negative on unbalanced `)`, as in
//! the reference) and outside a `BEGIN ATOMIC … END` body, which is consumed whole with
//! `CASE … END` pairs tracked. Words are maximal runs of ASCII letters, matched
//! case-insensitively; anything between them is skipped, exactly like the reference
//! (so `COMMIT1;` is a terminator and `COMMIT_x;` is not).
//!
//! Invariants: the head followed by the tail units' own texts (padding removed) reproduces the
//! script minus dropped blank segments; a unit's padding is one `\n` per newline before it and
//! one space per byte since the last newline, so PostgreSQL line numbers of a tail unit are the
//! script's line numbers. Every slice is cut just after an ASCII `;` or at the ends, so it is
//! always on a char boundary.

use crate::lexer;

/// One simple-query message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Exact text to send. Tail units start with padding: one `\n` per newline preceding the
    /// unit in the script, then one space per byte since the last of them.
    pub text: String,
    /// 1-based line of the script where the unit's own text (after the padding) starts.
    pub first_line: usize,
}

/// Splits `script` into execution units (see the module doc).
pub fn split(script: &str) -> Vec<Unit> {
    if script.is_empty() {
        return Vec::new();
    }
    let mask = lexer::mask_bytes(script.as_bytes());
    let whole = || {
        vec![Unit {
            text: script.to_owned(),
            first_line: 1,
        }]
    };

    let Some(head_end) = head_end(&mask) else {
        return whole();
    };
    if is_blank(&mask[head_end..]) {
        return whole();
    }

    let mut units = vec![Unit {
        text: script[..head_end].to_owned(),
        first_line: 1,
    }];
    let mut lines = LineCursor::default();
    let mut stmt_start = head_end;
    let mut push = |start: usize, end: usize, units: &mut Vec<Unit>| {
        if !is_blank(&mask[start..end]) {
            let (newlines, column) = lines.advance_to(script.as_bytes(), start);
            let mut text = String::with_capacity(newlines + column + (end - start));
            text.extend(std::iter::repeat_n('\n', newlines));
            text.extend(std::iter::repeat_n(' ', column));
            text.push_str(&script[start..end]);
            units.push(Unit {
                text,
                first_line: newlines + 1,
            });
        }
    };
    for semi in Boundaries::new(&mask, head_end) {
        push(stmt_start, semi + 1, &mut units);
        stmt_start = semi + 1;
    }
    push(stmt_start, mask.len(), &mut units);
    units
}

/// Byte offset just past the first top-level transaction terminator, if any.
fn head_end(mask: &[u8]) -> Option<usize> {
    let mut stmt_start = 0;
    for semi in Boundaries::new(mask, 0) {
        if is_terminator(&mask[stmt_start..semi]) {
            return Some(semi + 1);
        }
        stmt_start = semi + 1;
    }
    // A terminator as the last statement, without its `;`.
    is_terminator(&mask[stmt_start..]).then_some(mask.len())
}

/// Positions of the `;` that end split-level statements, scanning the mask from `start`.
struct Boundaries<'a> {
    mask: &'a [u8],
    pos: usize,
    depth: i64,
    /// Start of the text since the last top-level `;` (inside or outside an atomic body).
    chunk_start: usize,
    in_atomic_body: bool,
}

impl<'a> Boundaries<'a> {
    fn new(mask: &'a [u8], start: usize) -> Self {
        Boundaries {
            mask,
            pos: start,
            depth: 0,
            chunk_start: start,
            in_atomic_body: false,
        }
    }

    /// Consumes the chunk ending at a top-level `;` and says whether that `;` ends a
    /// statement: not inside a `BEGIN ATOMIC` body, except the one after its closing `END`.
    fn ends_statement(&mut self, chunk: &[u8]) -> bool {
        if self.in_atomic_body {
            if word_is(first_word(chunk).0, "END") {
                self.in_atomic_body = false;
                return true;
            }
            return false;
        }
        match after_begin_atomic(chunk) {
            Some(body) if !closes_body(body) => {
                self.in_atomic_body = true;
                false
            }
            _ => true,
        }
    }
}

impl Iterator for Boundaries<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.pos < self.mask.len() {
            let i = self.pos;
            self.pos += 1;
            match self.mask[i] {
                b'(' => self.depth += 1,
                b')' => self.depth -= 1,
                b';' if self.depth == 0 => {
                    let chunk_start = std::mem::replace(&mut self.chunk_start, i + 1);
                    if self.ends_statement(&self.mask[chunk_start..i]) {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Whether a masked top-level statement ends the transaction.
fn is_terminator(stmt: &[u8]) -> bool {
    let (first, rest) = first_word(stmt);
    if !["COMMIT", "END", "ROLLBACK", "ABORT"]
        .iter()
        .any(|w| word_is(first, w))
    {
        return false;
    }
    // WORK / TRANSACTION are noise words that may precede TO: consume them before deciding,
    // so `ROLLBACK TRANSACTION TO SAVEPOINT s` stays savepoint control.
    let (mut second, after) = first_word(rest);
    if word_is(second, "WORK") || word_is(second, "TRANSACTION") {
        second = first_word(after).0;
    }
    // Anything else (TO, PREPARED, garbage) is not a terminator of this transaction.
    second.is_empty() || word_is(second, "AND")
}

/// The text after a `BEGIN ATOMIC` pair, whose words must be separated by white space only
/// (so a query selecting columns named `begin` and `atomic` is not a body).
fn after_begin_atomic(mut s: &[u8]) -> Option<&[u8]> {
    loop {
        let (word, tail) = first_word(s);
        if word.is_empty() {
            return None;
        }
        if word_is(word, "BEGIN") && leading_space_only(tail) {
            let (next, after) = first_word(tail);
            if word_is(next, "ATOMIC") {
                return Some(after);
            }
        }
        s = tail;
    }
}

/// Whether an `END` not matched by a `CASE` appears: an empty body `BEGIN ATOMIC END` opens and
/// closes within one statement. `CASE … END` is the only other END-terminated construct a SQL
/// function body can hold.
fn closes_body(mut s: &[u8]) -> bool {
    let mut case_depth = 0usize;
    loop {
        let (word, tail) = first_word(s);
        if word.is_empty() {
            return false;
        }
        if word_is(word, "CASE") {
            case_depth += 1;
        } else if word_is(word, "END") {
            if case_depth == 0 {
                return true;
            }
            case_depth -= 1;
        }
        s = tail;
    }
}

/// First run of ASCII letters in `s` (possibly empty) and the text after it.
fn first_word(s: &[u8]) -> (&[u8], &[u8]) {
    let start = s
        .iter()
        .position(u8::is_ascii_alphabetic)
        .unwrap_or(s.len());
    let len = s[start..]
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(s.len() - start);
    (&s[start..start + len], &s[start + len..])
}

fn word_is(word: &[u8], keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Nothing but ` `, `\t`, `\n`, `\r` before the first ASCII letter.
fn leading_space_only(s: &[u8]) -> bool {
    s.iter()
        .take_while(|b| !b.is_ascii_alphabetic())
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Only ` `, `\t`, `\n`, `\r` (the mask has already blanked comments).
fn is_blank(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Counts newlines incrementally so padding all tail units stays linear in the script size.
#[derive(Default)]
struct LineCursor {
    pos: usize,
    newlines: usize,
    line_start: usize,
}

impl LineCursor {
    /// Moves to `to` (never backwards) and returns (newlines before `to`, bytes since the last
    /// newline).
    fn advance_to(&mut self, script: &[u8], to: usize) -> (usize, usize) {
        for (i, &b) in script[self.pos..to].iter().enumerate() {
            if b == b'\n' {
                self.newlines += 1;
                self.line_start = self.pos + i + 1;
            }
        }
        self.pos = to;
        (self.newlines, to - self.line_start)
    }
}

/// Where a PostgreSQL error position falls in a unit's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line (padded tail units keep the script's line numbers).
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// The whole line, trailing `\r`s removed.
    pub source_line: String,
}

/// Maps a PostgreSQL error `position` (1-based, counted in characters over the exact text
/// sent) to a line and column of `unit_text`. Position 0 (no position) or beyond one past the
/// end of the text → `None`; one past the end is valid (PostgreSQL points there for
/// "at end of input").
pub fn locate(unit_text: &str, position: usize) -> Option<Location> {
    if position == 0 {
        return None;
    }
    let mut line = 1;
    let mut column = 1;
    let mut line_start = 0;
    let mut chars = unit_text.char_indices();
    for _ in 1..position {
        let (at, c) = chars.next()?;
        if c == '\n' {
            line += 1;
            column = 1;
            line_start = at + 1;
        } else {
            column += 1;
        }
    }
    let rest = &unit_text[line_start..];
    let line_text = rest.split('\n').next().unwrap_or(rest);
    Some(Location {
        line,
        column,
        source_line: line_text.trim_end_matches('\r').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<String> {
        split(script).into_iter().map(|u| u.text).collect()
    }

    fn unpadded(script: &str) -> Vec<String> {
        split(script)
            .into_iter()
            .map(|u| u.text.trim_start_matches(['\n', ' ']).to_owned())
            .collect()
    }

    #[test]
    fn check_59_head_and_tail() {
        let script = "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\nANALYZE t;\n";
        let units = split(script);
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].text, "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;");
        assert_eq!(units[0].first_line, 1);
        assert_eq!(
            units[1].text,
            "\n\n       \nCREATE INDEX CONCURRENTLY i ON t (id);"
        );
        assert_eq!(units[1].first_line, 3);
        assert_eq!(
            units[2].text,
            format!("\n\n\n{}\nANALYZE t;", " ".repeat(38))
        );
        assert_eq!(units[2].first_line, 4);
    }

    #[test]
    fn check_60_tail_statements() {
        let script = "BEGIN; CREATE TABLE head_t(id int); COMMIT; CREATE TABLE tail_before(id int); BEGIN; INSERT INTO tail_before VALUES (1); SELECT 1/0; COMMIT;";
        assert_eq!(
            unpadded(script),
            [
                "BEGIN; CREATE TABLE head_t(id int); COMMIT;",
                "CREATE TABLE tail_before(id int);",
                "BEGIN;",
                "INSERT INTO tail_before VALUES (1);",
                "SELECT 1/0;",
                "COMMIT;"
            ]
        );
        // Padding keeps columns: every tail unit starts at its own byte offset.
        for unit in split(script).iter().skip(1) {
            let own = unit.text.trim_start_matches(' ');
            assert_eq!(&script[unit.text.len() - own.len()..][..own.len()], own);
        }
    }

    #[test]
    fn check_61_non_anchors_stay_one_unit() {
        for script in [
            "BEGIN; SAVEPOINT s; ROLLBACK TO SAVEPOINT s; SELECT 1;",
            "BEGIN; SAVEPOINT s; ROLLBACK TRANSACTION TO SAVEPOINT s; SELECT 1;",
            "BEGIN; SAVEPOINT s; ROLLBACK WORK TO s; SELECT 1;",
            "COMMIT PREPARED 'x'; SELECT 1;",
            "ROLLBACK PREPARED 'x'; SELECT 1;",
            "SELECT 'COMMIT;'; SELECT 1;",
            "SELECT 1; -- COMMIT;\nSELECT 2;",
            "SELECT 1; /* COMMIT; */ SELECT 2;",
            "DO $$ BEGIN COMMIT; END $$; SELECT 1;",
            "SELECT \"COMMIT;\"; SELECT 1;",
            "SELECT (1); SELECT f(x, (COMMIT)); SELECT 2;",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END; SELECT 2;",
        ] {
            assert_eq!(texts(script), [script], "{script:?}");
        }
    }

    #[test]
    fn check_61_anchors() {
        for (script, head) in [
            ("BEGIN; END; SELECT 1;", "BEGIN; END;"),
            ("BEGIN; ABORT; SELECT 1;", "BEGIN; ABORT;"),
            ("begin; commit; select 1;", "begin; commit;"),
            (
                "BEGIN; COMMIT AND CHAIN; SELECT 1;",
                "BEGIN; COMMIT AND CHAIN;",
            ),
            (
                "BEGIN; COMMIT AND NO CHAIN; SELECT 1;",
                "BEGIN; COMMIT AND NO CHAIN;",
            ),
            ("BEGIN; ROLLBACK WORK; SELECT 1;", "BEGIN; ROLLBACK WORK;"),
            (
                "BEGIN; COMMIT TRANSACTION; SELECT 1;",
                "BEGIN; COMMIT TRANSACTION;",
            ),
            (
                "BEGIN; /* c */ COMMIT /* c */; SELECT 1;",
                "BEGIN; /* c */ COMMIT /* c */;",
            ),
        ] {
            let units = texts(script);
            assert_eq!(units.len(), 2, "{script:?}");
            assert_eq!(units[0], head, "{script:?}");
            assert!(units[1].trim_start().eq_ignore_ascii_case("SELECT 1;"));
        }
    }

    #[test]
    fn atomic_body_in_tail_is_one_statement() {
        let body = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;";
        let script = format!("COMMIT; {body} SELECT 3;");
        assert_eq!(unpadded(&script), ["COMMIT;", body, "SELECT 3;"]);
        // Empty body closes in the same statement.
        let script = "COMMIT; CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC END; SELECT 3;";
        assert_eq!(unpadded(script).len(), 3, "{:?}", unpadded(script));
        // BEGIN and ATOMIC separated by anything but white space are not a body opener...
        let script = "COMMIT; SELECT begin, atomic FROM t; SELECT 3;";
        assert_eq!(unpadded(script).len(), 3);
        // ...but a comment is white space on the mask (reference behaviour): the "body" then
        // swallows the rest of the script.
        let script = "COMMIT; SELECT begin /**/ atomic FROM t; SELECT 3;";
        assert_eq!(unpadded(script).len(), 2);
    }

    #[test]
    fn terminator_without_semicolon_and_trailing_blank() {
        assert_eq!(
            texts("BEGIN; SELECT 1; COMMIT"),
            ["BEGIN; SELECT 1; COMMIT"]
        );
        assert_eq!(
            texts("BEGIN; COMMIT; -- done\n/* bye */\n"),
            ["BEGIN; COMMIT; -- done\n/* bye */\n"]
        );
        assert_eq!(texts("SELECT 1;"), ["SELECT 1;"]);
        assert_eq!(texts("  \n"), ["  \n"]);
        assert!(split("").is_empty());
    }

    #[test]
    fn tail_segments_blank_dropped_lone_semicolon_kept_comments_carried() {
        let script = "COMMIT;\n;\n  \n-- note\nSELECT 1;\n\n";
        let units = split(script);
        assert_eq!(units.len(), 3);
        assert_eq!(units[1].text, "       \n;");
        assert_eq!(units[1].first_line, 1);
        assert_eq!(units[2].text, "\n \n  \n-- note\nSELECT 1;");
        assert_eq!(units[2].first_line, 2);
        // A trailing statement without `;` is a unit too.
        assert_eq!(unpadded("COMMIT; SELECT 1"), ["COMMIT;", "SELECT 1"]);
    }

    #[test]
    fn reference_word_quirks() {
        assert_eq!(texts("BEGIN; COMMIT1; SELECT 1;").len(), 2);
        assert_eq!(texts("BEGIN; COMMIT_x; SELECT 1;").len(), 1);
        // Unbalanced `)` hides later semicolons, as in the reference.
        assert_eq!(texts("SELECT 1); COMMIT; SELECT 2;").len(), 1);
    }

    #[test]
    fn padding_maps_lines_with_multibyte_text() {
        let script = "COMMIT; SELECT 'é';\nSELECT 'ü'; SELEC 1;";
        let units = split(script);
        assert_eq!(units.len(), 4);
        let last = &units[3];
        assert_eq!(last.first_line, 2);
        // 12 bytes precede ` SELEC` on line 2 (ü is 2 bytes): columns drift by one, as documented.
        assert_eq!(last.text, format!("\n{} SELEC 1;", " ".repeat(12)));
        let at = last.text.chars().position(|c| c == 'S').unwrap() + 1;
        let loc = locate(&last.text, at).unwrap();
        assert_eq!((loc.line, loc.column), (2, 14));
        assert_eq!(loc.source_line, format!("{} SELEC 1;", " ".repeat(12)));
    }

    #[test]
    fn locate_counts_characters() {
        let text = "SELECT 'é';\r\nSELEC 1;";
        // `S` of SELEC is the 14th character (é counts once, \r and \n count).
        let loc = locate(text, 14).unwrap();
        assert_eq!(
            loc,
            Location {
                line: 2,
                column: 1,
                source_line: "SELEC 1;".into()
            }
        );
        let loc = locate(text, 10).unwrap();
        assert_eq!(
            (loc.line, loc.column, loc.source_line.as_str()),
            (1, 10, "SELECT 'é';")
        );
        assert_eq!(locate("SELEC 1;", 1).unwrap().column, 1);
        // One past the end is "at end of input"; further is out of range; 0 is no position.
        assert_eq!(locate("ab", 3).unwrap().column, 3);
        assert_eq!(locate("ab", 4), None);
        assert_eq!(locate("ab", 0), None);
        assert_eq!(
            locate("", 1).unwrap(),
            Location {
                line: 1,
                column: 1,
                source_line: String::new()
            }
        );
        assert_eq!(locate("a\r\r\n", 2).unwrap().source_line, "a");
    }
}
