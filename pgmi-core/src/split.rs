//! Splitting `deploy.sql` into execution units and mapping PostgreSQL error positions back to
//! lines of the script (docs/cookbook.md, "How `deploy.sql` is executed").
//!
//! PostgreSQL runs a multi-statement simple query inside one implicit transaction block, so
//! statements such as `CREATE INDEX CONCURRENTLY` cannot run from a script sent as one
//! message. The rule, as in the original pgmi:
//!
//! * the **head** is everything through the first top-level transaction terminator
//!   (`COMMIT`/`END`/`ROLLBACK`/`ABORT`, optionally `WORK`/`TRANSACTION`, then end of statement
//!   or `AND [NO] CHAIN`) — one unit, atomic;
//! * every top-level statement after it is its own unit (psql-like autocommit);
//! * no terminator, or only white space/comments after it → one unit, byte-identical to the
//!   script. An empty script has zero units (nothing to send).
//!
//! Statements are found on PostgreSQL's tokens ([`crate::lexer::postgres`]), so `;`,
//! parentheses and keywords inside strings, comments, quoted identifiers and dollar bodies are
//! invisible, and words are whole identifiers (`week_end` is not `END`, `audit$v1$` opens no
//! dollar quote). A `;` ends a statement at parenthesis depth 0 (the depth never goes below 0,
//! as in psql; a stray `)` is the server's syntax error either way) and outside a SQL-standard
//! routine body: in a statement that starts `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, the
//! tokens `BEGIN ATOMIC` at depth 0 open a body that the `END` not matched by a `CASE` closes
//! (the grammar's only other `END`; a `CASE`/`END` right after `AS` or `.` is a column label,
//! not a keyword). Comments may separate `BEGIN` and `ATOMIC`, as the server allows.
//!
//! `standard_conforming_strings` decides whether `'…'` takes backslash escapes, so the
//! splitter must scan each message with the value the server will parse it with
//! ([`Options`]). The head is one message: all of it is scanned with the initial value. After
//! it, a top-level `SET [SESSION] standard_conforming_strings {TO|=} …`, `SET … TO DEFAULT`
//! or `RESET standard_conforming_strings|ALL` in the head (unless the head ends in
//! `ROLLBACK`/`ABORT`) or in an earlier tail unit changes how the following units are
//! scanned, as psql does after each statement. Not followed: `SET LOCAL`, `set_config()`,
//! and a tail transaction rolled back after such a `SET`; `RESET`/`DEFAULT` return to the
//! initial value (the client should pass the server's, from `SHOW
//! standard_conforming_strings`). A script that needs those scans differently from the server.
//!
//! psql meta-commands (`\i`, `\set`, …) are not SQL: a `\` is a one-byte token like any
//! other, so such a line stays inside its statement and the server rejects it.
//!
//! Invariants: the head followed by the tail units' texts reproduces the script minus dropped
//! blank segments, byte for byte; tail units are not padded, so the bytes sent are linear in
//! the script: each unit records the script line and column where its text starts
//! ([`Unit::locate`] maps server positions back). Every slice is cut just after an ASCII `;`
//! or at the ends, so it is always on a char boundary. One forward pass over the tokens.

use std::ops::Range;

use crate::lexer::postgres::{self, Token, TokenKind};

/// One simple-query message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Exact text to send: a slice of the script, never padded.
    pub text: String,
    /// 1-based line of the script where `text` starts.
    pub first_line: usize,
    /// 1-based column, in characters, of the script where `text` starts.
    pub first_column: usize,
    /// The `standard_conforming_strings` this unit was scanned with (to mask it again the
    /// same way, e.g. for a psql script).
    pub standard_conforming_strings: bool,
}

/// What the splitter needs to know about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The session's `standard_conforming_strings` before deploy.sql runs (PostgreSQL's
    /// default is on).
    pub standard_conforming_strings: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            standard_conforming_strings: true,
        }
    }
}

/// Splits `script` into execution units with the default [`Options`].
pub fn split(script: &str) -> Vec<Unit> {
    split_with(script, Options::default())
}

/// Splits `script` into execution units (see the module doc).
pub fn split_with(script: &str, options: Options) -> Vec<Unit> {
    if script.is_empty() {
        return Vec::new();
    }
    let initial = options.standard_conforming_strings;
    let whole = || {
        vec![Unit {
            text: script.to_owned(),
            first_line: 1,
            first_column: 1,
            standard_conforming_strings: initial,
        }]
    };
    let mut statements = Statements::new(script.as_bytes(), initial);

    // The head: statements up to the first terminator, all scanned with the initial value.
    let mut scs_after_head = initial;
    let (head_end, keep_sets) = loop {
        let Some(stmt) = statements.next() else {
            return whole();
        };
        if let Some(value) = stmt.sets_standard_conforming_strings {
            scs_after_head = value.unwrap_or(initial);
        }
        if let Some(commits) = stmt.terminator {
            break (stmt.range.end, commits);
        }
    };
    if statements.rest_is_blank() {
        return whole();
    }

    let mut scs = if keep_sets { scs_after_head } else { initial };
    statements.set_standard_conforming_strings(scs);
    let mut units = vec![Unit {
        text: script[..head_end].to_owned(),
        first_line: 1,
        first_column: 1,
        standard_conforming_strings: initial,
    }];
    let mut lines = LineCursor::default();
    while let Some(stmt) = statements.next() {
        if stmt.blank {
            continue;
        }
        let (line, column) = lines.advance_to(script.as_bytes(), stmt.range.start);
        units.push(Unit {
            text: script[stmt.range].to_owned(),
            first_line: line,
            first_column: column,
            standard_conforming_strings: scs,
        });
        if let Some(value) = stmt.sets_standard_conforming_strings {
            scs = value.unwrap_or(initial);
            statements.set_standard_conforming_strings(scs);
        }
    }
    units
}

/// Byte ranges of every top-level statement of `script` as PostgreSQL's scanner and the
/// splitter see them, each through its `;` (or to the end), white space and comments before
/// it included; the ranges cover the script. Every statement is scanned with `options`' value
/// (no `SET` is followed): this is what the server sees when the whole text is one message.
pub fn statements(script: &str, options: Options) -> Vec<Range<usize>> {
    Statements::new(script.as_bytes(), options.standard_conforming_strings)
        .map(|s| s.range)
        .collect()
}

/// The byte offset just past the first top-level transaction terminator (its `;` included,
/// or the end of the script), scanning everything with `options`' value; `None` without one.
/// [`split`] cuts the head there unless only white space and comments follow.
pub fn head_end(script: &str, options: Options) -> Option<usize> {
    Statements::new(script.as_bytes(), options.standard_conforming_strings)
        .find(|s| s.terminator.is_some())
        .map(|s| s.range.end)
}

/// One top-level statement.
struct Statement {
    range: Range<usize>,
    /// Only white space and comments (no `;` either).
    blank: bool,
    /// `Some(commits)` for a transaction terminator; `commits` is false for
    /// `ROLLBACK`/`ABORT`.
    terminator: Option<bool>,
    /// `Some(Some(v))` for `SET standard_conforming_strings` to `v`, `Some(None)` for a reset
    /// to the initial value.
    sets_standard_conforming_strings: Option<Option<bool>>,
}

/// The statements of a script, in order.
struct Statements<'a> {
    src: &'a [u8],
    tokens: postgres::Tokens<'a>,
}

/// How many significant tokens classify a statement (`SET SESSION x TO 'on'` is the longest).
const HEAD_TOKENS: usize = 5;

impl<'a> Statements<'a> {
    fn new(src: &'a [u8], standard_conforming_strings: bool) -> Self {
        Statements {
            src,
            tokens: postgres::tokens(src, standard_conforming_strings),
        }
    }

    fn set_standard_conforming_strings(&mut self, on: bool) {
        self.tokens.set_standard_conforming_strings(on);
    }

    /// Whether nothing but white space and comments is left.
    fn rest_is_blank(&self) -> bool {
        self.tokens.clone().all(|t| t.kind.is_blank())
    }

    fn word(&self, t: &Token, keyword: &str) -> bool {
        t.kind == TokenKind::Word
            && self.src[t.range.clone()].eq_ignore_ascii_case(keyword.as_bytes())
    }

    fn is_routine(&self, head: &[Token]) -> bool {
        let w = |i: usize, k: &str| head.get(i).is_some_and(|t| self.word(t, k));
        let kind_at = |i: usize| w(i, "FUNCTION") || w(i, "PROCEDURE");
        w(0, "CREATE") && (kind_at(1) || (w(1, "OR") && w(2, "REPLACE") && kind_at(3)))
    }

    fn terminator(&self, head: &[Token]) -> Option<bool> {
        let first = head.first()?;
        let commits = if self.word(first, "COMMIT") || self.word(first, "END") {
            true
        } else if self.word(first, "ROLLBACK") || self.word(first, "ABORT") {
            false
        } else {
            return None;
        };
        // WORK / TRANSACTION are noise words that may precede TO: consume them before
        // deciding, so `ROLLBACK TRANSACTION TO SAVEPOINT s` stays savepoint control.
        let mut rest = &head[1..];
        if rest
            .first()
            .is_some_and(|t| self.word(t, "WORK") || self.word(t, "TRANSACTION"))
        {
            rest = &rest[1..];
        }
        // Anything else (TO, PREPARED, garbage) is not a terminator of this transaction.
        match rest.first() {
            None => Some(commits),
            Some(t) if t.kind == TokenKind::Semicolon || self.word(t, "AND") => Some(commits),
            Some(_) => None,
        }
    }

    /// `SET [SESSION] standard_conforming_strings {TO|=} value`, `RESET …`.
    fn scs_change(&self, head: &[Token]) -> Option<Option<bool>> {
        let is = |i: usize, k: &str| head.get(i).is_some_and(|t| self.word(t, k));
        let name = |i: usize| is(i, "standard_conforming_strings");
        if is(0, "RESET") && (name(1) || is(1, "ALL")) {
            return Some(None);
        }
        if !is(0, "SET") {
            return None;
        }
        let at = if is(1, "SESSION") { 2 } else { 1 };
        if !name(at) {
            return None;
        }
        let op = head.get(at + 1)?;
        if !(self.word(op, "TO") || &self.src[op.range.clone()] == b"=") {
            return None;
        }
        let value = head.get(at + 2)?;
        let text = &self.src[value.range.clone()];
        let text = match value.kind {
            TokenKind::String { .. } if text.len() >= 2 => &text[1..text.len() - 1],
            TokenKind::Word | TokenKind::Number => text,
            _ => return None,
        };
        let lower = text.to_ascii_lowercase();
        match lower.as_slice() {
            b"default" if value.kind == TokenKind::Word => Some(None),
            b"on" | b"true" | b"yes" | b"1" => Some(Some(true)),
            b"off" | b"false" | b"no" | b"0" => Some(Some(false)),
            _ => None,
        }
    }
}

impl Iterator for Statements<'_> {
    type Item = Statement;

    fn next(&mut self) -> Option<Statement> {
        let start = self.tokens.position();
        if start >= self.src.len() {
            return None;
        }
        let mut head: Vec<Token> = Vec::with_capacity(HEAD_TOKENS);
        let mut blank = true;
        let mut depth = 0usize;
        let mut routine: Option<bool> = None;
        let mut prev: Option<Token> = None;
        let mut after_begin = false;
        // Inside a routine body: the number of open CASEs.
        let mut body: Option<usize> = None;
        let mut end = self.src.len();
        #[allow(clippy::while_let_on_iterator)] // `self` is borrowed again in the body
        while let Some(token) = self.tokens.next() {
            if token.kind.is_blank() {
                continue;
            }
            blank = false;
            if head.len() < HEAD_TOKENS {
                head.push(token.clone());
            }
            // A CASE or END right after AS or `.` is a label, not a keyword.
            let label = prev
                .as_ref()
                .is_some_and(|p| self.word(p, "AS") || &self.src[p.range.clone()] == b".");
            match token.kind {
                TokenKind::Open => depth += 1,
                TokenKind::Close => depth = depth.saturating_sub(1),
                TokenKind::Semicolon if depth == 0 && body.is_none() => {
                    end = token.range.end;
                    break;
                }
                TokenKind::Word if !label => {
                    if let Some(open_cases) = body.as_mut() {
                        if self.word(&token, "CASE") {
                            *open_cases += 1;
                        } else if self.word(&token, "END") {
                            match open_cases.checked_sub(1) {
                                Some(n) => *open_cases = n,
                                None => body = None,
                            }
                        }
                    } else if depth == 0 {
                        if after_begin && self.word(&token, "ATOMIC") {
                            let is_routine = *routine.get_or_insert_with(|| self.is_routine(&head));
                            if is_routine {
                                body = Some(0);
                            }
                        }
                        after_begin = self.word(&token, "BEGIN");
                        prev = Some(token);
                        continue;
                    }
                }
                _ => {}
            }
            after_begin = false;
            prev = Some(token);
        }
        let terminator = if blank { None } else { self.terminator(&head) };
        let sets = if blank { None } else { self.scs_change(&head) };
        Some(Statement {
            range: start..end,
            blank,
            terminator,
            sets_standard_conforming_strings: sets,
        })
    }
}

/// Counts lines and columns incrementally so locating all tail units stays linear in the
/// script size.
#[derive(Default)]
struct LineCursor {
    pos: usize,
    newlines: usize,
    /// Characters since the last newline.
    column: usize,
}

impl LineCursor {
    /// Moves to `to` (never backwards) and returns its 1-based line and column (characters).
    fn advance_to(&mut self, script: &[u8], to: usize) -> (usize, usize) {
        for &b in &script[self.pos..to] {
            if b == b'\n' {
                self.newlines += 1;
                self.column = 0;
            } else if b & 0xC0 != 0x80 {
                self.column += 1;
            }
        }
        self.pos = to;
        (self.newlines + 1, self.column + 1)
    }
}

/// Where a PostgreSQL error position falls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// The whole line, trailing `\r`s removed.
    pub source_line: String,
}

impl Unit {
    /// Maps a PostgreSQL error `position` in this unit's text to the script's line and
    /// column. On the unit's first line, `source_line` shows the part of the script line
    /// before the unit as spaces (one per character), so a caret under `column` lines up.
    pub fn locate(&self, position: usize) -> Option<Location> {
        let mut loc = locate(&self.text, position)?;
        if loc.line == 1 {
            let lead = self.first_column - 1;
            loc.column += lead;
            loc.source_line = format!("{}{}", " ".repeat(lead), loc.source_line);
        }
        loc.line += self.first_line - 1;
        Some(loc)
    }
}

/// Maps a PostgreSQL error `position` (1-based, counted in characters over the exact text
/// sent) to a line and column of `unit_text`. Position 0 (no position) or beyond one past the
/// end of the text → `None`; one past the end is valid (PostgreSQL points there for
/// "at end of input"). [`Unit::locate`] gives the script's line and column.
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
mod tests;
