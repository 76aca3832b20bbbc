//! PostgreSQL's own token rules (`src/backend/parser/scan.l`), reduced to what decides where
//! statements and comments are: every byte of the input lands in exactly one [`Token`].
//!
//! Rules, each the server's (PostgreSQL 16/17 wording; older releases agree on every
//! script they accept):
//!
//! * White space is `[ \t\n\r\f\v]`. `--` starts a comment that ends *before* the next `\n`
//!   or `\r` (so a lone `\r` ends it too). `/*` starts a comment anywhere outside the
//!   constructs below, even glued to an operator (`+/*`); `/*` inside nests, `*/` un-nests.
//! * Identifiers are `[A-Za-z_\x80-\xff][A-Za-z_0-9$\x80-\xff]*`: a `$` inside an identifier
//!   is part of it, so `audit$v1$` is one word and opens no dollar quote.
//! * A dollar quote opens only where a token starts: `$$` or `$tag$` with the tag following
//!   the identifier rules without `$` (`[A-Za-z_\x80-\xff][A-Za-z_0-9\x80-\xff]*`); it closes
//!   at the identical tag. `$` + digits is a parameter; any other `$` is a one-byte token.
//! * String prefixes are taken at a token start only: `E'` (backslash escapes), `B'`, `X'`
//!   (no escapes), `N'` (as a plain `'`), `U&'` (no backslash escapes: the escape character is
//!   applied after scanning), `U&"` (a quoted identifier). A plain `'` string takes backslash
//!   escapes iff `standard_conforming_strings` is off. With it off the server rejects `U&'`;
//!   this scanner then reads it as psql does (no escapes), which ends the same statement.
//! * In a string `''` stays inside; with escapes, `\` takes the next byte with it. After the
//!   closing quote, white space that contains a newline (line comments allowed, block comments
//!   not) followed by `'` continues the *same* literal, with the same escape rule: the gap is
//!   reported as ordinary space and comment tokens, and the next segment as another string
//!   token with the first one's `escape`.
//! * Quoted identifiers: `""` stays inside, a lone `"` closes.
//! * Unterminated strings, identifiers, dollar bodies and block comments run to EOF (the
//!   server rejects them; the scan still covers the input).
//!
//! Numbers are reduced to runs of digits: the server's other number forms (`1.5e3`, `0x1F`,
//! `1_000`) only differ in how letters and dots after the digits are grouped, and those never
//! contain `$`, quotes, `;`, parentheses or comment starts. String prefixes are recognised
//! after digits too (`1e'x'` reads as `1` then `e'x'`, as the server did before 15; 15 and
//! later reject such "trailing junk").
//!
//! Invariants: tokens are non-empty, contiguous, cover the input, and start and end on ASCII
//! bytes or at the ends (a multi-byte character is always inside one token), so for `&str`
//! input every boundary is a char boundary. One forward pass; a closing dollar tag is found by
//! scanning forward once, so the whole scan is linear.

use std::ops::Range;

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `[ \t\n\r\f\v]+`.
    Space,
    /// `--…` up to (not including) the next `\n` or `\r`.
    LineComment,
    /// `/*…*/` including both delimiters and any nested comments.
    BlockComment { terminated: bool },
    /// The prefix of a string or quoted identifier: `E`, `B`, `X`, `N`, `U&`.
    Prefix,
    /// One `'…'` segment including both quotes; `escape` when `\` escapes the next byte.
    String { escape: bool, terminated: bool },
    /// `"…"` including both quotes.
    QuotedIdent { terminated: bool },
    /// `$tag$…$tag$`; `tag_len` counts both `$`.
    Dollar { tag_len: usize, terminated: bool },
    /// An identifier or keyword.
    Word,
    /// `$` followed by digits.
    Param,
    /// A run of ASCII digits.
    Number,
    /// `;`.
    Semicolon,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// Any other single byte (operators, punctuation, a lone `$`, `\`).
    Other,
}

impl TokenKind {
    /// White space or a comment: what PostgreSQL skips between tokens.
    pub fn is_blank(self) -> bool {
        matches!(
            self,
            TokenKind::Space | TokenKind::LineComment | TokenKind::BlockComment { .. }
        )
    }
}

/// One token of the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte range in the scanned text.
    pub range: Range<usize>,
}

/// Iterator over the [`Token`]s of a text; see [`tokens`].
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    src: &'a [u8],
    pos: usize,
    standard_conforming_strings: bool,
    /// Where a string continuation's next `'` sits, and the escape rule it inherits.
    continuation: Option<(usize, bool)>,
}

/// Scans `src` with PostgreSQL's rules; `standard_conforming_strings` as the server has it
/// when the text is parsed.
pub fn tokens(src: &[u8], standard_conforming_strings: bool) -> Tokens<'_> {
    Tokens {
        src,
        pos: 0,
        standard_conforming_strings,
        continuation: None,
    }
}

impl<'a> Tokens<'a> {
    /// Byte offset of the next token.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Changes the setting for the tokens still to come (a `SET` took effect between two
    /// messages). Safe only between statements, where no string is open.
    pub fn set_standard_conforming_strings(&mut self, on: bool) {
        self.standard_conforming_strings = on;
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.src.get(i).copied()
    }

    fn scan(&mut self, start: usize) -> (TokenKind, usize) {
        let b = self.src[start];
        let next = self.at(start + 1);
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b => {
                let len = self.src[start..]
                    .iter()
                    .position(|&c| !is_space(c))
                    .unwrap_or(self.src.len() - start);
                (TokenKind::Space, start + len)
            }
            b'-' if next == Some(b'-') => {
                (TokenKind::LineComment, line_comment_end(self.src, start))
            }
            b'/' if next == Some(b'*') => {
                let (terminated, end) = block_comment_end(self.src, start);
                (TokenKind::BlockComment { terminated }, end)
            }
            b'\'' => {
                let escape = match self.continuation.take() {
                    Some((at, escape)) if at == start => escape,
                    _ => !self.standard_conforming_strings,
                };
                self.string(start, escape)
            }
            b'"' => {
                let (terminated, end) = quoted_ident_end(self.src, start);
                (TokenKind::QuotedIdent { terminated }, end)
            }
            b'$' => match next {
                Some(d) if d.is_ascii_digit() => {
                    (TokenKind::Param, digits_end(self.src, start + 1))
                }
                _ => match dollar_tag_len(self.src, start) {
                    Some(tag_len) => {
                        let (terminated, end) = dollar_body_end(self.src, start, tag_len);
                        (
                            TokenKind::Dollar {
                                tag_len,
                                terminated,
                            },
                            end,
                        )
                    }
                    None => (TokenKind::Other, start + 1),
                },
            },
            b';' => (TokenKind::Semicolon, start + 1),
            b'(' => (TokenKind::Open, start + 1),
            b')' => (TokenKind::Close, start + 1),
            b'0'..=b'9' => (TokenKind::Number, digits_end(self.src, start)),
            _ if is_ident_start(b) => match (b.to_ascii_lowercase(), next, self.at(start + 2)) {
                (b'b' | b'x' | b'n' | b'e', Some(b'\''), _) => {
                    // The string itself is the next token; its escape rule is decided here.
                    let escape = match b.to_ascii_lowercase() {
                        b'e' => true,
                        b'n' => !self.standard_conforming_strings,
                        _ => false,
                    };
                    self.continuation = Some((start + 1, escape));
                    (TokenKind::Prefix, start + 1)
                }
                (b'u', Some(b'&'), Some(b'\'')) => {
                    self.continuation = Some((start + 2, false));
                    (TokenKind::Prefix, start + 2)
                }
                (b'u', Some(b'&'), Some(b'"')) => (TokenKind::Prefix, start + 2),
                _ => {
                    let len = self.src[start..]
                        .iter()
                        .position(|&c| !is_ident_cont(c))
                        .unwrap_or(self.src.len() - start);
                    (TokenKind::Word, start + len)
                }
            },
            _ => (TokenKind::Other, start + 1),
        }
    }

    /// A `'` segment from `start`; on a continuation, remembers where the next segment opens.
    fn string(&mut self, start: usize, escape: bool) -> (TokenKind, usize) {
        let src = self.src;
        let mut i = start + 1;
        while i < src.len() {
            match src[i] {
                b'\\' if escape && i + 1 < src.len() => i += 2,
                b'\'' if src.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => {
                    let end = i + 1;
                    if let Some(next) = continuation(src, end) {
                        self.continuation = Some((next, escape));
                    }
                    let kind = TokenKind::String {
                        escape,
                        terminated: true,
                    };
                    return (kind, end);
                }
                _ => i += 1,
            }
        }
        let kind = TokenKind::String {
            escape,
            terminated: false,
        };
        (kind, src.len())
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let start = self.pos;
        if start >= self.src.len() {
            return None;
        }
        let (kind, end) = self.scan(start);
        self.pos = end;
        Some(Token {
            kind,
            range: start..end,
        })
    }
}

/// `[ \t\n\r\f\v]`.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `[A-Za-z_\x80-\xff]`.
pub fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// `[A-Za-z_0-9$\x80-\xff]`.
pub fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn digits_end(src: &[u8], from: usize) -> usize {
    from + src[from..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(src.len() - from)
}

fn line_comment_end(src: &[u8], start: usize) -> usize {
    start
        + src[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(src.len() - start)
}

/// End of the (nesting) block comment opening at `start`, and whether it was closed.
/// The original pgmi's scanner reads block comments, quoted identifiers and dollar bodies the
/// same way, so these three scans serve both rule sets.
pub(super) fn block_comment_end(src: &[u8], start: usize) -> (bool, usize) {
    let mut depth = 1usize;
    let mut i = start + 2;
    while i < src.len() {
        match (src[i], src.get(i + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return (true, i);
                }
            }
            _ => i += 1,
        }
    }
    (false, src.len())
}

/// End of the quoted identifier opening at `start` (`""` is an escaped quote).
pub(super) fn quoted_ident_end(src: &[u8], start: usize) -> (bool, usize) {
    let mut i = start + 1;
    while i < src.len() {
        match src[i] {
            b'"' if src.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => return (true, i + 1),
            _ => i += 1,
        }
    }
    (false, src.len())
}

/// Length of the dollar tag at `at` (both `$` included) under PostgreSQL's rules.
pub fn dollar_tag_len(src: &[u8], at: usize) -> Option<usize> {
    if src.get(at) != Some(&b'$') {
        return None;
    }
    match src.get(at + 1) {
        Some(b'$') => return Some(2),
        Some(&b) if is_ident_start(b) => {}
        _ => return None,
    }
    let mut i = at + 2;
    while let Some(&b) = src.get(i) {
        if b == b'$' {
            return Some(i + 1 - at);
        }
        if !(is_ident_start(b) || b.is_ascii_digit()) {
            return None;
        }
        i += 1;
    }
    None
}

/// End of the dollar-quoted body whose `tag_len`-byte tag opens at `start`.
pub(super) fn dollar_body_end(src: &[u8], start: usize, tag_len: usize) -> (bool, usize) {
    let tag = &src[start..start + tag_len];
    let mut i = start + tag_len;
    while let Some(off) = src[i..].iter().position(|&b| b == b'$') {
        let at = i + off;
        if src[at..].starts_with(tag) {
            return (true, at + tag_len);
        }
        i = at + 1;
    }
    (false, src.len())
}

/// If a quote continuation follows a string that closed just before `from`, the offset of
/// the `'` that continues it: `[ \t\f]` or line comments, then one newline, then any white
/// space or line comments each followed by a newline, then `'`. The server reads the gap,
/// line comments included, as part of the literal.
pub fn continuation(src: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        match src.get(i) {
            Some(b' ' | b'\t' | 0x0c) => i += 1,
            Some(b'-') if src.get(i + 1) == Some(&b'-') => i = line_comment_end(src, i),
            _ => break,
        }
    }
    if !matches!(src.get(i), Some(b'\n' | b'\r')) {
        return None;
    }
    i += 1;
    loop {
        match src.get(i) {
            Some(&b) if is_space(b) => i += 1,
            Some(b'-') if src.get(i + 1) == Some(&b'-') => {
                let end = line_comment_end(src, i);
                if end == src.len() {
                    return None;
                }
                i = end + 1;
            }
            Some(b'\'') => return Some(i),
            _ => return None,
        }
    }
}
