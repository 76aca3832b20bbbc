//! The SQL scanners, under two sets of rules, and the same-length mask built on them.
//!
//! * [`Rules::Postgres`] — PostgreSQL's own token rules ([`postgres`] lists them). The
//!   `deploy.sql` splitter, the mask ([`mask`], used for the test macros and the psql script)
//!   and `<pgmi-meta>` extraction ([`block_comment_spans`]) use them, so what they call a
//!   comment, a string or a statement boundary is what the server calls one. The
//!   differential tests (`tests/differential.rs`, `scripts/differential.sh`) compare them
//!   with PostgreSQL's scanner and parser.
//! * [`Rules::Reference`] — the original pgmi's checksum scanner, kept bit for bit because stored
//!   `pgmi_checksum` values depend on it. Only [`pieces`] (and so `checksum.rs`) uses it:
//!   - `--` starts a line comment. It ends *before* the `\n` that closes it, or before the
//!     `\r` of a closing `\r\n`; those bytes are code. EOF also ends it.
//!   - `/*` starts a block comment; `/*` inside nests, `*/` un-nests, depth 0 closes it. An
//!     unterminated one runs to EOF.
//!   - `'` starts a string. It is an escape string (`E'…'`) iff the byte before the quote is
//!     `E`/`e` and that `E` is at offset 0 or follows a byte that is not an identifier byte
//!     (`[A-Za-z0-9_$]` or ≥ 0x80). Inside an escape string `\` takes the next byte with it;
//!     in every string `''` stays inside and a lone `'` closes it.
//!   - `"` starts a quoted identifier; `""` stays inside, a lone `"` closes it.
//!   - `$$` or `$tag$` (tag `[A-Za-z_][A-Za-z0-9_]*`, ASCII only) starts a dollar-quoted body
//!     closed by the identical tag (case-sensitive). The preceding byte is not checked, so
//!     `a$b$c` opens a body at `$b$` — a quirk of the original pgmi the checksums depend on.
//!   - Anything else is code. Unterminated strings, identifiers and bodies run to EOF.
//!
//!   Where the two disagree (`audit$v1$`, `$é$`, a `\r` ending a line comment, string
//!   continuations, `standard_conforming_strings = off`) only the checksum follows the
//!   original pgmi; it is a hash, so a disagreement there can only make two files compare equal
//!   or different, never send or hide SQL.
//!
//! Invariants (both rules): the pieces are non-empty, contiguous, in order and cover the
//! input exactly; every piece boundary sits on an ASCII byte or an end, so for `&str` input
//! every boundary is a char boundary. Scanning is a single forward pass with no allocation.
//!
//! psql meta-commands (`\i`, `\set`, …) mean nothing to the server: a `\` outside literals is
//! one byte of code here, as in the server's scanner, so a meta-command line stays inside the
//! statement it appears in and the server rejects that statement with a syntax error.

use std::ops::Range;

pub mod postgres;

/// Which scanning rules (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// The original pgmi's checksum scanner.
    Reference,
    /// PostgreSQL's scanner, with the `standard_conforming_strings` the server parses with.
    Postgres { standard_conforming_strings: bool },
}

impl Rules {
    /// PostgreSQL's rules with its default `standard_conforming_strings = on`.
    pub const POSTGRES: Rules = Rules::Postgres {
        standard_conforming_strings: true,
    };
}

/// What a [`Piece`] of SQL text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// Ordinary SQL outside every construct below.
    Code,
    /// `--…` up to (not including) the closing `\n` or `\r\n`.
    LineComment,
    /// `/*…*/` including both delimiters and any nested comments.
    BlockComment { terminated: bool },
    /// `'…'` including both quotes; `escape` for `E'…'` strings.
    String { escape: bool, terminated: bool },
    /// `"…"` including both quotes.
    QuotedIdent { terminated: bool },
    /// `$tag$…$tag$` including both tags; `tag_len` counts both `$`.
    Dollar { tag_len: usize, terminated: bool },
}

/// One contiguous piece of the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub kind: PieceKind,
    /// Byte range in the scanned text.
    pub range: Range<usize>,
}

/// Iterator over the [`Piece`]s of a text; see [`pieces_with`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    inner: Inner<'a>,
}

#[derive(Debug, Clone)]
enum Inner<'a> {
    Reference(ReferencePieces<'a>),
    Postgres(std::iter::Peekable<postgres::Tokens<'a>>),
}

/// Splits `src` into pieces with the original pgmi's checksum rules (see the module doc).
pub fn pieces(src: &[u8]) -> Pieces<'_> {
    pieces_with(src, Rules::Reference)
}

/// Splits `src` into pieces (code, comments, strings, quoted identifiers, dollar bodies).
pub fn pieces_with(src: &[u8], rules: Rules) -> Pieces<'_> {
    let inner = match rules {
        Rules::Reference => Inner::Reference(ReferencePieces { src, pos: 0 }),
        Rules::Postgres {
            standard_conforming_strings,
        } => Inner::Postgres(postgres::tokens(src, standard_conforming_strings).peekable()),
    };
    Pieces { inner }
}

impl Iterator for Pieces<'_> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        match &mut self.inner {
            Inner::Reference(p) => p.next(),
            Inner::Postgres(tokens) => {
                use postgres::TokenKind as T;
                let token = tokens.next()?;
                let kind = match token.kind {
                    T::LineComment => PieceKind::LineComment,
                    T::BlockComment { terminated } => PieceKind::BlockComment { terminated },
                    T::String { escape, terminated } => PieceKind::String { escape, terminated },
                    T::QuotedIdent { terminated } => PieceKind::QuotedIdent { terminated },
                    T::Dollar {
                        tag_len,
                        terminated,
                    } => PieceKind::Dollar {
                        tag_len,
                        terminated,
                    },
                    _ => {
                        // Runs of code tokens form one piece.
                        let mut end = token.range.end;
                        while let Some(t) = tokens.next_if(|t| is_code(t.kind)) {
                            end = t.range.end;
                        }
                        return Some(Piece {
                            kind: PieceKind::Code,
                            range: token.range.start..end,
                        });
                    }
                };
                Some(Piece {
                    kind,
                    range: token.range,
                })
            }
        }
    }
}

fn is_code(kind: postgres::TokenKind) -> bool {
    use postgres::TokenKind as T;
    !matches!(
        kind,
        T::LineComment
            | T::BlockComment { .. }
            | T::String { .. }
            | T::QuotedIdent { .. }
            | T::Dollar { .. }
    )
}

/// The state of the original pgmi's scanner ([`Rules::Reference`]); see [`pieces`].
#[derive(Debug, Clone)]
struct ReferencePieces<'a> {
    src: &'a [u8],
    pos: usize,
}

/// A top-level block comment: the text between `/*` and `*/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockComment {
    /// Byte range of the interior (after `/*`, before the closing `*/`, or to EOF).
    pub interior: Range<usize>,
    /// False when the comment runs to EOF without its `*/`.
    pub terminated: bool,
}

/// Byte ranges of the interiors of every top-level block comment, in order.
///
/// Nested comments belong to their outermost comment; `/*` inside strings, quoted identifiers
/// and dollar bodies is not a comment. An unterminated comment's interior runs to EOF (use
/// [`block_comment_spans`] to tell it apart).
pub fn block_comments(sql: &str) -> Vec<Range<usize>> {
    block_comment_spans(sql)
        .into_iter()
        .map(|c| c.interior)
        .collect()
}

/// Like [`block_comments`], also saying whether each comment was closed (PostgreSQL's rules,
/// `standard_conforming_strings = on`).
pub fn block_comment_spans(sql: &str) -> Vec<BlockComment> {
    block_comment_spans_with(sql, Rules::POSTGRES)
}

/// [`block_comment_spans`] under the given rules.
pub fn block_comment_spans_with(sql: &str, rules: Rules) -> Vec<BlockComment> {
    pieces_with(sql.as_bytes(), rules)
        .filter_map(|p| match p.kind {
            PieceKind::BlockComment { terminated } => {
                let end = if terminated {
                    p.range.end - 2
                } else {
                    p.range.end
                };
                Some(BlockComment {
                    interior: p.range.start + 2..end,
                    terminated,
                })
            }
            _ => None,
        })
        .collect()
}

/// Same-length mask of `sql`, under PostgreSQL's rules with
/// `standard_conforming_strings = on`: comments (delimiters included), string interiors,
/// quoted-identifier interiors and dollar bodies become ASCII spaces, byte for byte.
///
/// Kept: code, the quotes of strings and identifiers, `''` / `""` pairs inside them, and
/// dollar tags. Newlines inside masked regions become spaces too (as in the original pgmi's
/// mask), so count lines on the original text, never on the mask. Multi-byte characters inside
/// masked regions become one space per byte, so byte offsets in the mask and the input line up.
pub fn mask(sql: &str) -> String {
    let bytes = mask_bytes(sql.as_bytes());
    // Masked regions are replaced whole and start and end on ASCII bytes, and code is
    // copied verbatim, so the mask of valid UTF-8 is valid UTF-8; the fallback is unreachable
    // and only keeps this function total.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`mask`] over bytes.
pub fn mask_bytes(src: &[u8]) -> Vec<u8> {
    mask_bytes_with(src, Rules::POSTGRES)
}

/// [`mask_bytes`] under the given rules.
pub fn mask_bytes_with(src: &[u8], rules: Rules) -> Vec<u8> {
    let mut out = src.to_vec();
    for piece in pieces_with(src, rules) {
        let Range { start, end } = piece.range;
        match piece.kind {
            PieceKind::Code => {}
            PieceKind::LineComment | PieceKind::BlockComment { .. } => blank(&mut out[start..end]),
            PieceKind::String { escape, terminated } => {
                let inner_end = if terminated { end - 1 } else { end };
                mask_quoted(&mut out, start + 1..inner_end, b'\'', escape);
            }
            PieceKind::QuotedIdent { terminated } => {
                let inner_end = if terminated { end - 1 } else { end };
                mask_quoted(&mut out, start + 1..inner_end, b'"', false);
            }
            PieceKind::Dollar {
                tag_len,
                terminated,
            } => {
                let body_end = if terminated { end - tag_len } else { end };
                blank(&mut out[start + tag_len..body_end]);
            }
        }
    }
    out
}

fn blank(bytes: &mut [u8]) {
    bytes.fill(b' ');
}

/// Masks the interior of a string or quoted identifier, keeping doubled quotes. Inside the
/// interior a quote byte can only be half of a doubled pair (a lone one would have closed
/// the piece) or an escaped `\'`, which the escape rule consumes first.
fn mask_quoted(out: &mut [u8], interior: Range<usize>, quote: u8, escape: bool) {
    let mut i = interior.start;
    while i < interior.end {
        let b = out[i];
        if escape && b == b'\\' {
            let stop = (i + 2).min(interior.end);
            blank(&mut out[i..stop]);
            i = stop;
        } else if b == quote {
            i += 2;
        } else {
            out[i] = b' ';
            i += 1;
        }
    }
}

/// `[A-Za-z0-9_$]` or any byte of a multi-byte character.
fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Length of the dollar tag starting at `at` (both `$` included) under the original pgmi's rules,
/// if one starts there ([`postgres::dollar_tag_len`] for PostgreSQL's).
pub fn dollar_tag_len(src: &[u8], at: usize) -> Option<usize> {
    if src.get(at) != Some(&b'$') {
        return None;
    }
    let mut i = at + 1;
    match src.get(i) {
        Some(b'$') => return Some(2),
        Some(&b) if b.is_ascii_alphabetic() || b == b'_' => i += 1,
        _ => return None,
    }
    while let Some(&b) = src.get(i) {
        if b == b'$' {
            return Some(i + 1 - at);
        }
        if !(b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        i += 1;
    }
    None
}

impl ReferencePieces<'_> {
    /// Whether a construct (comment, string, identifier, dollar body) starts at `i`.
    fn construct_starts(&self, i: usize) -> bool {
        let next = self.src.get(i + 1).copied();
        match self.src[i] {
            b'-' => next == Some(b'-'),
            b'/' => next == Some(b'*'),
            b'\'' | b'"' => true,
            b'$' => dollar_tag_len(self.src, i).is_some(),
            _ => false,
        }
    }

    fn line_comment(&self, start: usize) -> (PieceKind, usize) {
        let src = self.src;
        let body = start + 2;
        let end = match src[body..].iter().position(|&b| b == b'\n') {
            // `\r\n` closes the comment as a pair; a `\r` elsewhere is comment text.
            Some(off) if off > 0 && src[body + off - 1] == b'\r' => body + off - 1,
            Some(off) => body + off,
            None => src.len(),
        };
        (PieceKind::LineComment, end)
    }

    fn string(&self, start: usize) -> (PieceKind, usize) {
        let src = self.src;
        let escape = start >= 1
            && matches!(src[start - 1], b'E' | b'e')
            && (start == 1 || !is_ident_byte(src[start - 2]));
        let mut i = start + 1;
        while i < src.len() {
            match src[i] {
                b'\\' if escape && i + 1 < src.len() => i += 2,
                b'\'' if src.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => {
                    return (
                        PieceKind::String {
                            escape,
                            terminated: true,
                        },
                        i + 1,
                    )
                }
                _ => i += 1,
            }
        }
        (
            PieceKind::String {
                escape,
                terminated: false,
            },
            src.len(),
        )
    }
}

impl Iterator for ReferencePieces<'_> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        let start = self.pos;
        if start >= self.src.len() {
            return None;
        }
        let mut i = start;
        while i < self.src.len() && !self.construct_starts(i) {
            i += 1;
        }
        let (kind, end) = if i > start {
            (PieceKind::Code, i)
        } else {
            match self.src[start] {
                b'-' => self.line_comment(start),
                b'/' => {
                    let (terminated, end) = postgres::block_comment_end(self.src, start);
                    (PieceKind::BlockComment { terminated }, end)
                }
                b'\'' => self.string(start),
                b'"' => {
                    let (terminated, end) = postgres::quoted_ident_end(self.src, start);
                    (PieceKind::QuotedIdent { terminated }, end)
                }
                // construct_starts() returned true, so a tag starts here.
                _ => match dollar_tag_len(self.src, start) {
                    Some(tag_len) => {
                        let (terminated, end) = postgres::dollar_body_end(self.src, start, tag_len);
                        (
                            PieceKind::Dollar {
                                tag_len,
                                terminated,
                            },
                            end,
                        )
                    }
                    None => (PieceKind::Code, start + 1),
                },
            }
        };
        self.pos = end;
        Some(Piece {
            kind,
            range: start..end,
        })
    }
}

#[cfg(test)]
mod tests;
