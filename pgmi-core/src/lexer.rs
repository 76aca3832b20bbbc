//! The one SQL scanning state machine (contract §3.2 "Scan states", §6.6 "Masking").
//!
//! Checksum normalisation, `<pgmi-meta>` extraction and the `deploy.sql` splitter must agree
//! exactly on what is a comment, a string, a quoted identifier or a dollar-quoted body, so all
//! three are built on [`pieces`]. The reference had two scanners that differed in corner cases
//! (§3.2, last paragraph); this crate has one, with the checksum scanner's rules:
//!
//! * `--` starts a line comment. It ends *before* the `\n` that closes it, or before the `\r`
//!   of a closing `\r\n`; those bytes are code. EOF also ends it.
//! * `/*` starts a block comment; `/*` inside nests, `*/` un-nests, depth 0 closes it. An
//!   unterminated one runs to EOF.
//! * `'` starts a string. It is an escape string (`E'…'`) iff the byte before the quote is
//!   `E`/`e` and that `E` is at offset 0 or follows a byte that is not an identifier byte
//!   (`[A-Za-z0-9_$]` or ≥ 0x80). Inside an escape string `\` takes the next byte with it;
//!   in every string `''` stays inside and a lone `'` closes it.
//! * `"` starts a quoted identifier; `""` stays inside, a lone `"` closes it.
//! * `$$` or `$tag$` (tag `[A-Za-z_][A-Za-z0-9_]*`, ASCII only) starts a dollar-quoted body
//!   closed by the identical tag (case-sensitive). The preceding byte is not checked, so
//!   `a$b$c` opens a body at `$b$` — a reference quirk the checksums depend on.
//! * Anything else is code. Unterminated strings, identifiers and bodies run to EOF.
//!
//! Invariants: the pieces returned by [`pieces`] are non-empty, contiguous, in order and
//! cover the input exactly; every piece boundary sits on an ASCII byte, so for `&str` input
//! every boundary is a char boundary. Scanning is a single forward pass with no allocation.

use std::ops::Range;

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

/// Iterator over the [`Piece`]s of a text; see [`pieces`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    src: &'a [u8],
    pos: usize,
}

/// Splits `src` into pieces (code, comments, strings, quoted identifiers, dollar bodies).
pub fn pieces(src: &[u8]) -> Pieces<'_> {
    Pieces { src, pos: 0 }
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

/// Like [`block_comments`], also saying whether each comment was closed.
pub fn block_comment_spans(sql: &str) -> Vec<BlockComment> {
    pieces(sql.as_bytes())
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

/// Same-length mask of `sql` (§6.6): comments (delimiters included), string interiors,
/// quoted-identifier interiors and dollar bodies become ASCII spaces, byte for byte.
///
/// Kept: code, the quotes of strings and identifiers, `''` / `""` pairs inside them, and
/// dollar tags. Newlines inside masked regions become spaces too (as in the reference), so
/// count lines on the original text, never on the mask. Multi-byte characters inside masked
/// regions become one space per byte, so byte offsets in the mask and the input line up.
pub fn mask(sql: &str) -> String {
    let bytes = mask_bytes(sql.as_bytes());
    // Masked regions are replaced whole and start and end on ASCII bytes, and code is
    // copied verbatim, so the mask of valid UTF-8 is valid UTF-8; the fallback is unreachable
    // and only keeps this function total.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`mask`] over bytes.
pub fn mask_bytes(src: &[u8]) -> Vec<u8> {
    let mut out = src.to_vec();
    for piece in pieces(src) {
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

/// Length of the dollar tag starting at `at` (both `$` included), if one starts there.
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

impl Pieces<'_> {
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

    fn block_comment(&self, start: usize) -> (PieceKind, usize) {
        let src = self.src;
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
                        return (PieceKind::BlockComment { terminated: true }, i);
                    }
                }
                _ => i += 1,
            }
        }
        (PieceKind::BlockComment { terminated: false }, src.len())
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

    fn quoted_ident(&self, start: usize) -> (PieceKind, usize) {
        let src = self.src;
        let mut i = start + 1;
        while i < src.len() {
            match src[i] {
                b'"' if src.get(i + 1) == Some(&b'"') => i += 2,
                b'"' => return (PieceKind::QuotedIdent { terminated: true }, i + 1),
                _ => i += 1,
            }
        }
        (PieceKind::QuotedIdent { terminated: false }, src.len())
    }

    fn dollar(&self, start: usize, tag_len: usize) -> (PieceKind, usize) {
        let src = self.src;
        let tag = &src[start..start + tag_len];
        let mut i = start + tag_len;
        while let Some(off) = src[i..].iter().position(|&b| b == b'$') {
            let at = i + off;
            if src[at..].starts_with(tag) {
                return (
                    PieceKind::Dollar {
                        tag_len,
                        terminated: true,
                    },
                    at + tag_len,
                );
            }
            i = at + 1;
        }
        (
            PieceKind::Dollar {
                tag_len,
                terminated: false,
            },
            src.len(),
        )
    }
}

impl Iterator for Pieces<'_> {
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
                b'/' => self.block_comment(start),
                b'\'' => self.string(start),
                b'"' => self.quoted_ident(start),
                // construct_starts() returned true, so a tag starts here.
                _ => match dollar_tag_len(self.src, start) {
                    Some(tag_len) => self.dollar(start, tag_len),
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
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(PieceKind, &str)> {
        pieces(sql.as_bytes())
            .map(|p| (p.kind, &sql[p.range]))
            .collect()
    }

    #[test]
    fn pieces_cover_input() {
        let sql = "SELECT 'a''b', E'x\\'y', \"q\"\"r\", $f$ -- $f$ /* c /* d */ e */ -- t\r\nx";
        let mut at = 0;
        for p in pieces(sql.as_bytes()) {
            assert_eq!(p.range.start, at);
            assert!(p.range.end > p.range.start);
            at = p.range.end;
        }
        assert_eq!(at, sql.len());
    }

    #[test]
    fn constructs() {
        use PieceKind::*;
        assert_eq!(
            kinds("a -- c\r\nb"),
            vec![(Code, "a "), (LineComment, "-- c"), (Code, "\r\nb")]
        );
        assert_eq!(
            kinds("-- c\r\r\n"),
            vec![(LineComment, "-- c\r"), (Code, "\r\n")]
        );
        assert_eq!(kinds("--\r\n"), vec![(LineComment, "--"), (Code, "\r\n")]);
        assert_eq!(
            kinds("/* a /* b */ c */x"),
            vec![
                (BlockComment { terminated: true }, "/* a /* b */ c */"),
                (Code, "x")
            ]
        );
        assert_eq!(
            kinds("/*/"),
            vec![(BlockComment { terminated: false }, "/*/")]
        );
        assert_eq!(
            kinds("E'a\\'b'"),
            vec![
                (Code, "E"),
                (
                    String {
                        escape: true,
                        terminated: true
                    },
                    "'a\\'b'"
                )
            ]
        );
        assert_eq!(
            kinds("xe'a\\'b'"),
            vec![
                (Code, "xe"),
                (
                    String {
                        escape: false,
                        terminated: true
                    },
                    "'a\\'"
                ),
                (Code, "b"),
                (
                    String {
                        escape: false,
                        terminated: false
                    },
                    "'"
                )
            ]
        );
        assert_eq!(
            kinds("\"a\"\"b\""),
            vec![(QuotedIdent { terminated: true }, "\"a\"\"b\"")]
        );
        assert_eq!(
            kinds("a$b$c$b$"),
            vec![
                (Code, "a"),
                (
                    Dollar {
                        tag_len: 3,
                        terminated: true
                    },
                    "$b$c$b$"
                )
            ]
        );
        assert_eq!(
            kinds("$1 $$"),
            vec![
                (Code, "$1 "),
                (
                    Dollar {
                        tag_len: 2,
                        terminated: false
                    },
                    "$$"
                )
            ]
        );
        assert_eq!(kinds("$é$"), vec![(Code, "$é$")]);
    }

    #[test]
    fn escape_rule_boundaries() {
        let esc = |sql: &str| {
            pieces(sql.as_bytes()).any(|p| matches!(p.kind, PieceKind::String { escape: true, .. }))
        };
        assert!(esc("E'x'"));
        assert!(esc("e'x'"));
        assert!(esc(" E'x'"));
        assert!(esc("(E'x'"));
        assert!(!esc("1E'x'"));
        assert!(!esc("_e'x'"));
        assert!(!esc("$e'x'"));
        assert!(!esc("ée'x'"));
        assert!(!esc("'x'"));
    }

    #[test]
    fn mask_keeps_lengths_and_quotes() {
        let sql = "SELECT 'it''s é', \"Ä\"\"b\" -- no\n/* x */ E'a\\'b' $t$ body $t$;";
        let m = mask(sql);
        assert_eq!(m.len(), sql.len());
        assert_eq!(
            m,
            "SELECT '  ''    ', \"  \"\" \"      \n        E'    ' $t$      $t$;"
        );
    }

    #[test]
    fn mask_unterminated() {
        assert_eq!(mask("a 'bc"), "a '  ");
        assert_eq!(mask("a $$ bc"), "a $$   ");
        assert_eq!(mask("a /* bc"), "a      ");
        assert_eq!(mask("a \"bc"), "a \"  ");
        assert_eq!(mask("E'\\"), "E' ");
    }

    #[test]
    fn block_comment_ranges() {
        let sql = "x /* a /* b */ */ '/* no */' $$ /* no */ $$ -- /* no\n/*z";
        let spans = block_comment_spans(sql);
        assert_eq!(spans.len(), 2);
        assert_eq!(&sql[spans[0].interior.clone()], " a /* b */ ");
        assert!(spans[0].terminated);
        assert_eq!(&sql[spans[1].interior.clone()], "z");
        assert!(!spans[1].terminated);
        assert_eq!(block_comments("/**/"), vec![2..2]);
        assert_eq!(block_comments("/*"), vec![2..2]);
    }
}
