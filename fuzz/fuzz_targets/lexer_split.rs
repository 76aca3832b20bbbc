//! The SQL lexers (both rule sets), the mask, block-comment spans, the `deploy.sql`
//! splitter and error-position mapping.
//!
//! Invariants checked on every input (any bytes; the `&str` functions get the lossy UTF-8
//! form), under `Rules::Reference` (the original pgmi's checksum rules) and PostgreSQL's (with
//! `standard_conforming_strings` on and off):
//! * pieces are non-empty, contiguous, in order and cover the input exactly, and each has
//!   the shape its kind claims (opening delimiter, closing delimiter when terminated, runs to
//!   the end when not); under `Rules::Reference` no construct could start inside code;
//! * every piece boundary of a `&str` is a char boundary;
//! * the mask keeps the length and the code bytes and blanks comments; `mask` of a `&str`
//!   is the same bytes (valid UTF-8, no lossy fallback);
//! * block-comment spans are exactly the block-comment pieces, interiors in bounds;
//! * `split_with`: no units for an empty script; otherwise the head starts the script, every
//!   tail unit is a verbatim slice of the script starting just after a `;` at the unit's
//!   `first_line`/`first_column`, slices are in order and do not overlap, and what lies
//!   between and after them is blank (white space and comments); one unit means the whole
//!   script byte for byte; the bytes sent never exceed the script's (no padding);
//! * `Unit::locate` at position 1 gives the unit's own line and column; `locate` accepts one
//!   past the end and refuses anything beyond.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The allocator with the single-allocation cap.
use pgmi_fuzz as _;
use pgmi_core::lexer::{self, PieceKind, Rules};
use pgmi_core::split::{self, Options};

const ALL_RULES: [Rules; 3] = [
    Rules::Reference,
    Rules::POSTGRES,
    Rules::Postgres {
        standard_conforming_strings: false,
    },
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;
    for rules in ALL_RULES {
        check_pieces(data, rules);
        check_mask(data, &lexer::mask_bytes_with(data, rules), rules);
        for p in lexer::pieces_with(text.as_bytes(), rules) {
            assert!(text.is_char_boundary(p.range.start) && text.is_char_boundary(p.range.end));
        }
        check_comments(text, rules);
    }
    let masked = lexer::mask(text);
    assert_eq!(masked.as_bytes(), lexer::mask_bytes(text.as_bytes()).as_slice());
    for standard_conforming_strings in [true, false] {
        check_split(text, Options { standard_conforming_strings });
    }
});

/// Mirror of the lexer's rule for where a construct starts (see `lexer.rs`).
fn construct_starts(src: &[u8], i: usize) -> bool {
    let next = src.get(i + 1).copied();
    match src[i] {
        b'-' => next == Some(b'-'),
        b'/' => next == Some(b'*'),
        b'\'' | b'"' => true,
        b'$' => lexer::dollar_tag_len(src, i).is_some(),
        _ => false,
    }
}

fn check_pieces(src: &[u8], rules: Rules) {
    let mut at = 0;
    for p in lexer::pieces_with(src, rules) {
        let (start, end) = (p.range.start, p.range.end);
        assert_eq!(start, at, "pieces must be contiguous");
        assert!(end > start && end <= src.len(), "piece out of bounds or empty");
        let s = &src[start..end];
        let runs_to_eof = end == src.len();
        match p.kind {
            PieceKind::Code => {
                if rules == Rules::Reference {
                    assert!(
                        (start..end).all(|i| !construct_starts(src, i)),
                        "a construct starts inside a code piece at {start}..{end}"
                    );
                }
            }
            PieceKind::LineComment => {
                assert!(s.starts_with(b"--"));
                assert!(!s.contains(&b'\n'), "a line comment holds its newline");
            }
            PieceKind::BlockComment { terminated } => {
                assert!(s.starts_with(b"/*"));
                if terminated {
                    assert!(s.len() >= 4 && s.ends_with(b"*/"));
                } else {
                    assert!(runs_to_eof);
                }
            }
            PieceKind::String { terminated, .. } => {
                assert!(s.contains(&b'\''));
                if terminated {
                    assert!(s.len() >= 2 && s.ends_with(b"'"));
                } else {
                    assert!(runs_to_eof);
                }
            }
            PieceKind::QuotedIdent { terminated } => {
                assert!(s.contains(&b'"'));
                if terminated {
                    assert!(s.len() >= 2 && s.ends_with(b"\""));
                } else {
                    assert!(runs_to_eof);
                }
            }
            PieceKind::Dollar {
                tag_len,
                terminated,
            } => {
                assert!(tag_len >= 2 && s.len() >= tag_len);
                let tag = &s[..tag_len];
                assert!(tag[0] == b'$' && tag[tag_len - 1] == b'$');
                if rules == Rules::Reference {
                    assert_eq!(lexer::dollar_tag_len(src, start), Some(tag_len));
                }
                if terminated {
                    assert!(s.len() >= 2 * tag_len && s.ends_with(tag));
                    // The closing tag is the first copy of the tag after the opening one.
                    assert!(!contains(&s[tag_len..s.len() - 1], tag));
                } else {
                    assert!(runs_to_eof);
                    assert!(!contains(&s[tag_len..], tag), "unterminated body holds its tag");
                }
            }
        }
        at = end;
    }
    assert_eq!(at, src.len(), "pieces must cover the input");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn check_mask(src: &[u8], mask: &[u8], rules: Rules) {
    assert_eq!(mask.len(), src.len());
    for p in lexer::pieces_with(src, rules) {
        let r = p.range.clone();
        match p.kind {
            PieceKind::Code => assert_eq!(&mask[r.clone()], &src[r]),
            PieceKind::LineComment | PieceKind::BlockComment { .. } => {
                assert!(mask[r].iter().all(|&b| b == b' '))
            }
            PieceKind::String { .. } | PieceKind::QuotedIdent { .. } => {
                // Delimiters may stay; nothing else of the text survives.
                assert!(mask[r.clone()]
                    .iter()
                    .zip(&src[r])
                    .all(|(&m, &b)| m == b' ' || m == b));
            }
            PieceKind::Dollar { tag_len, .. } => {
                assert_eq!(&mask[r.start..r.start + tag_len], &src[r.start..r.start + tag_len]);
            }
        }
    }
}

fn check_comments(text: &str, rules: Rules) {
    let from_pieces: Vec<_> = lexer::pieces_with(text.as_bytes(), rules)
        .filter_map(|p| match p.kind {
            PieceKind::BlockComment { terminated } => Some((p.range, terminated)),
            _ => None,
        })
        .collect();
    let spans = lexer::block_comment_spans_with(text, rules);
    assert_eq!(spans.len(), from_pieces.len());
    for (span, (range, terminated)) in spans.iter().zip(&from_pieces) {
        assert_eq!(span.terminated, *terminated);
        assert_eq!(span.interior.start, range.start + 2);
        let end = if *terminated { range.end - 2 } else { range.end };
        assert_eq!(span.interior.end, end);
        assert!(text.get(span.interior.clone()).is_some(), "interior not on char boundaries");
    }
}

/// Only white space (PostgreSQL's `[ \t\n\r\f\v]`) and comments, scanned on its own with
/// `scs`.
fn is_blank(text: &[u8], scs: bool) -> bool {
    let rules = Rules::Postgres {
        standard_conforming_strings: scs,
    };
    lexer::mask_bytes_with(text, rules)
        .iter()
        .all(|&c| lexer::postgres::is_space(c))
}

fn check_split(script: &str, options: Options) {
    let units = split::split_with(script, options);
    if script.is_empty() {
        assert!(units.is_empty());
        return;
    }
    assert!(!units.is_empty());
    let sent: usize = units.iter().map(|u| u.text.len()).sum();
    assert!(sent <= script.len(), "units hold more bytes than the script");
    let head = &units[0];
    assert_eq!((head.first_line, head.first_column), (1, 1));
    assert_eq!(head.standard_conforming_strings, options.standard_conforming_strings);
    assert!(script.starts_with(head.text.as_str()), "head is not a prefix of the script");
    if units.len() == 1 {
        assert_eq!(head.text, script, "a single unit must be the whole script");
        return;
    }
    assert!(head.text.ends_with(';'), "a split head ends at its terminator's ';'");

    let bytes = script.as_bytes();
    // Walks the script forward once, so checking every unit stays linear.
    let mut cur = Cursor::default();
    cur.skip(script, head.text.len());
    let mut prev_end = head.text.len();
    let last = units.len() - 1;
    for (n, unit) in units.iter().enumerate().skip(1) {
        let target = (unit.first_line, unit.first_column);
        assert!(target >= cur.at(), "unit {n} starts before the previous one ends");
        while cur.at() < target {
            assert!(cur.step(script), "unit {n} starts past the end of the script");
        }
        assert_eq!(cur.at(), target, "unit {n}: no such column on its line");
        let p = cur.pos;
        assert_eq!(bytes[p - 1], b';', "unit {n} does not start just after a ';'");
        let end = p + unit.text.len();
        assert_eq!(
            script.get(p..end),
            Some(unit.text.as_str()),
            "unit {n} is not the script's text at its position"
        );
        if n != last {
            assert!(unit.text.ends_with(';'), "a tail unit other than the last ends at ';'");
        }
        let scs = unit.standard_conforming_strings;
        assert!(!is_blank(unit.text.as_bytes(), scs), "a blank unit was sent");
        assert!(is_blank(&bytes[prev_end..p], scs), "unit {n}: non-blank text before it was dropped");
        let loc = unit.locate(1).expect("position 1 is inside the unit");
        assert_eq!((loc.line, loc.column), target);
        cur.skip(script, end);
        prev_end = end;
    }
    let scs = units[last].standard_conforming_strings;
    assert!(is_blank(&bytes[prev_end..], scs), "non-blank text after the last unit was dropped");

    // locate: one past the end is valid, beyond it is not.
    for unit in &units {
        let chars = unit.text.chars().count();
        assert!(split::locate(&unit.text, chars + 1).is_some());
        assert!(split::locate(&unit.text, chars + 2).is_none());
        assert!(split::locate(&unit.text, 0).is_none());
    }

    // The statement ranges cover the script.
    let mut at = 0;
    for r in split::statements(script, options) {
        assert_eq!(r.start, at);
        assert!(r.end >= r.start);
        at = r.end;
    }
    assert_eq!(at, script.len());
}

/// A position in the script with its 1-based line and column (in characters).
struct Cursor {
    pos: usize,
    line: usize,
    column: usize,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            pos: 0,
            line: 1,
            column: 1,
        }
    }
}

impl Cursor {
    fn at(&self) -> (usize, usize) {
        (self.line, self.column)
    }

    /// Moves one character forward; false at the end.
    fn step(&mut self, script: &str) -> bool {
        let Some(c) = script[self.pos..].chars().next() else {
            return false;
        };
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        true
    }

    fn skip(&mut self, script: &str, to: usize) {
        while self.pos < to {
            self.step(script);
        }
    }
}
