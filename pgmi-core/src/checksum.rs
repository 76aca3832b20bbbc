//! The two content checksums (docs/session-api.md, "Checksums").
//!
//! Invariants:
//!
//! * **Input** is the exact file bytes after the caller stripped a UTF-8 BOM; nothing else is
//!   changed before hashing (no newline or encoding conversion).
//! * **Output** is always 64 lowercase hex digits of SHA-256.
//! * [`raw`] hashes the bytes as they are (`_pgmi_source.checksum`).
//! * [`normalized`] hashes [`normalize`] (`pgmi_checksum`, `pgmi_plan_view.checksum`), which is
//!   bit-for-bit the original pgmi's normalisation, so checksums stored by projects deployed
//!   with it still compare equal:
//!   1. one left-to-right scan with the shared [`crate::lexer`] state machine: every line or
//!      block comment becomes one space; strings, quoted identifiers and dollar bodies are kept
//!      verbatim; every other byte has ASCII `A`–`Z` folded to lowercase (non-ASCII letters
//!      are never folded);
//!   2. over the whole result, *including* literals and bodies, every maximal run of Unicode
//!      white space (Go's `unicode.IsSpace`: `\t \n \v \f \r`, space, U+0085, U+00A0, U+1680,
//!      U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) becomes one ASCII space, and
//!      leading/trailing white space is dropped.
//!
//! Both steps run fused in one pass that writes straight into one output buffer (no regex,
//! no per-byte allocation); a space is written where a run starts and a trailing one dropped.
//! Invalid UTF-8 is tolerated: undecodable bytes are never white space and are copied.
//!
//! Cost, measured in a release build (2-core VM; `scripts/bench.sh load` measures the whole
//! load): for 10,000 files of ~1.5 KB (15.6 MB of migrations), `normalize` takes ~19 ms,
//! of which ~6 ms is the scan into pieces (it was ~23 ms with a branch per white-space
//! run); both checksums of every file take ~45 ms in all.

use crate::lexer::{pieces, PieceKind};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of the exact bytes.
pub fn raw(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of [`normalize`]`(bytes)`.
pub fn normalized(bytes: &[u8]) -> String {
    hex(&Sha256::digest(normalize(bytes)))
}

/// The normalised text whose hash is [`normalized`] (see the module doc for the rules).
pub fn normalize(bytes: &[u8]) -> Vec<u8> {
    let mut out = Collapser {
        // Every piece is written in place into room made for it first, so the buffer
        // never holds more than the input plus one byte.
        out: Vec::with_capacity(bytes.len() + 1),
        last_space: true,
    };
    for piece in pieces(bytes) {
        let text = &bytes[piece.range];
        match piece.kind {
            PieceKind::Code => out.feed::<true>(text),
            PieceKind::LineComment | PieceKind::BlockComment { .. } => out.space(),
            PieceKind::String { .. } | PieceKind::QuotedIdent { .. } | PieceKind::Dollar { .. } => {
                out.feed::<false>(text)
            }
        }
    }
    out.finish()
}

/// Writes text while collapsing white-space runs into one space and trimming both ends.
///
/// A space is written when a run of white space starts (unless the output is empty or
/// already ends in one), and a trailing space is dropped at the end. Each byte is copied
/// without a branch on whether it is white space (a run of three letters between spaces,
/// as in much SQL, made that branch a coin toss): the byte, or a space in its place, is
/// stored, and the write position moves unless it was white space after white space.
/// Only lead bytes of possible multi-byte white space take a slower path.
struct Collapser {
    out: Vec<u8>,
    /// The output is empty or ends in the space of a run: more white space adds nothing.
    last_space: bool,
}

impl Collapser {
    fn space(&mut self) {
        if !self.last_space {
            self.out.push(b' ');
            self.last_space = true;
        }
    }

    fn feed<const FOLD: bool>(&mut self, text: &[u8]) {
        let start = self.out.len();
        self.out.resize(start + text.len(), 0);
        // `w` never passes `i`: each input byte writes at most one output byte.
        let dst = &mut self.out[start..];
        let mut w = 0;
        let mut last_space = self.last_space;
        let mut skip = 0;
        for (i, &b) in text.iter().enumerate() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let class = CLASS[usize::from(b)];
            if class == MAYBE_SPACE {
                let len = unicode_space_len(&text[i..]);
                if len > 0 {
                    if !last_space {
                        dst[w] = b' ';
                        w += 1;
                        last_space = true;
                    }
                    skip = len - 1;
                    continue;
                }
            }
            let space = class == SPACE;
            let byte = if FOLD { LOWER[usize::from(b)] } else { b };
            dst[w] = if space { b' ' } else { byte };
            w += usize::from(!(space && last_space));
            last_space = space;
        }
        self.out.truncate(start + w);
        self.last_space = last_space;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.out.last() == Some(&b' ') {
            self.out.pop();
        }
        self.out
    }
}

/// [`CLASS`] values: ASCII white space, and lead bytes of the multi-byte white space of
/// [`unicode_space_len`].
const SPACE: u8 = 1;
const MAYBE_SPACE: u8 = 2;

const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let spaces = [b'\t', b'\n', 0x0b, 0x0c, b'\r', b' '];
    let mut i = 0;
    while i < spaces.len() {
        table[spaces[i] as usize] = SPACE;
        i += 1;
    }
    let leads = [0xC2u8, 0xE1, 0xE2, 0xE3];
    let mut i = 0;
    while i < leads.len() {
        table[leads[i] as usize] = MAYBE_SPACE;
        i += 1;
    }
    table
};

/// ASCII `A`–`Z` folded to lowercase; every other byte (non-ASCII included) unchanged.
const LOWER: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    table
};

/// Byte length of the non-ASCII Unicode white-space character starting `text`, or 0.
/// These are all of Go's `unicode.IsSpace` above U+007F, as UTF-8.
fn unicode_space_len(text: &[u8]) -> usize {
    match *text {
        // U+0085, U+00A0
        [0xC2, 0x85 | 0xA0, ..] => 2,
        // U+1680
        [0xE1, 0x9A, 0x80, ..] => 3,
        // U+2000–U+200A, U+2028, U+2029, U+202F
        [0xE2, 0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF, ..] => 3,
        // U+205F
        [0xE2, 0x81, 0x9F, ..] => 3,
        // U+3000
        [0xE3, 0x80, 0x80, ..] => 3,
        _ => 0,
    }
}

fn hex(digest: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(digest.len() * 2);
    for &b in digest {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        String::from_utf8(normalize(s.as_bytes())).unwrap()
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SELECT_ONE: &str = "354b7196c9ba5fb4b21cf615bb6ec4cd5c07503c34229feef033fc081a8c03f4";
    const USERS: &str = "770ec17e2277e313a56c78ecab71d0ee460922cac72efddf9869ca4194276572";

    #[test]
    fn pinned_checksums_of_a_query_and_of_empty_input() {
        assert_eq!(normalized(b"SELECT * FROM users;"), USERS);
        assert_eq!(normalized(b"SELECT * FROM USERS;"), USERS);
        assert_eq!(
            raw(b"SELECT * FROM users;"),
            "d1ec24bdafb79996d598fd0707064fc6766042c1054c8ca379da5fc6a3a03e5a"
        );
        assert_eq!(raw(b""), EMPTY);
        assert_eq!(normalized(b""), EMPTY);
    }

    #[test]
    fn raw_checksum_of_select_1() {
        assert!(raw(b"SELECT 1;").starts_with("17db4fd3"));
        assert!(raw(b"SELECT 1;").ends_with("d11a"));
        assert_eq!(raw(b"SELECT 1;").len(), 64);
    }

    #[test]
    fn comments_white_space_and_crlf_do_not_change_the_normalised_checksum() {
        for text in [
            "SELECT 1;",
            "-- header\nSELECT   1;  /* trailer */\n",
            "SELECT 1;\r\n",
        ] {
            assert_eq!(norm(text), "select 1;", "{text:?}");
            assert_eq!(normalized(text.as_bytes()), SELECT_ONE, "{text:?}");
        }
        assert_eq!(norm("SELECT 'A  B';"), "select 'A B';");
        assert_eq!(normalized(b"SELECT 'A  B';"), normalized(b"select 'A B';"));
    }

    #[test]
    fn observed_normalisations_table() {
        assert_eq!(norm("SELECT * FROM USERS;"), "select * from users;");
        assert_ne!(normalized(b"SELECT 'a B';"), normalized(b"select 'A B';"));
        assert_eq!(norm("SELECT 'a B';"), "select 'a B';");
        assert_eq!(
            normalized(b"CREATE TABLE \"Users\" (id int);"),
            normalized(b"create table \"Users\" (ID INT); -- c")
        );
        assert_ne!(
            normalized(b"CREATE TABLE \"Users\" (id int);"),
            normalized(b"CREATE TABLE \"users\" (id int);")
        );
        assert_eq!(
            norm("CREATE FUNCTION f() AS $$ SELECT 1 -- c\n $$ LANGUAGE sql; -- x"),
            "create function f() as $$ SELECT 1 -- c $$ language sql;"
        );
        assert_eq!(norm("SELECT\u{a0}a\u{2003}b FROM t"), "select a b from t");
        assert_eq!(norm("SELECT 'unterminated"), "select 'unterminated");
        assert_eq!(norm("SELECT 1; /* unterminated"), "select 1;");
        assert_eq!(
            norm("SELECT ÄBC, \"ÄBC\" FROM Ärger"),
            "select Äbc, \"ÄBC\" from Ärger"
        );
    }

    #[test]
    fn case_inside_literals_identifiers_and_bodies_changes_the_checksum() {
        let differ = |a: &str, b: &str| {
            assert_ne!(
                normalized(a.as_bytes()),
                normalized(b.as_bytes()),
                "{a:?} vs {b:?}"
            )
        };
        differ("SELECT \"Users\";", "SELECT \"users\";");
        differ("SELECT 'Production';", "SELECT 'production';");
        differ(
            "DO $$ BEGIN RAISE NOTICE 'Xy'; END $$;",
            "DO $$ BEGIN RAISE NOTICE 'xy'; END $$;",
        );
        differ(
            "SELECT E'a\\'-- keep this' , 1",
            "SELECT E'a\\'-- keep this' , 2",
        );
        differ("SELECT \"a--b\" , 1", "SELECT \"a--b\" , 2");
        differ("SELECT \"a/*x*/b\"", "SELECT \"ab\"");
        differ("SELECT \"a/*x*/b\"", "SELECT \"a/*y*/b\"");
        differ("a/*x*/b", "ab");
        assert_eq!(normalized(b"a/*x*/b"), normalized(b"a b"));
    }

    #[test]
    fn pinned_equalities() {
        let same = |a: &str, b: &str| {
            assert_eq!(
                normalized(a.as_bytes()),
                normalized(b.as_bytes()),
                "{a:?} vs {b:?}"
            )
        };
        same("SELECT a FROM t;", "select A from T;");
        same("SELECT 1;\nSELECT 2;\n", "SELECT 1;\r\nSELECT 2;\r\n");
        same(
            "CREATE TABLE t (\n    id int\n);",
            "CREATE TABLE t (\n\tid int\n);",
        );
        same("-- lead\nSELECT 1; -- trail", "SELECT 1;");
        same("/* outer /* inner */ still */ SELECT 1;", "SELECT 1;");
    }

    #[test]
    fn string_prefixes_fold_but_not_contents() {
        assert_eq!(
            norm("SELECT E'A', X'FF', U&'Ab'"),
            "select e'A', x'FF', u&'Ab'"
        );
        // An escaped quote does not end an E-string, so `--` after it is string text.
        assert_eq!(norm("SELECT E'a\\'-- KEEP' X"), "select e'a\\'-- KEEP' x");
        // Without the E, the same bytes end the string and `--` starts a comment.
        assert_eq!(norm("SELECT 'a\\'-- KEEP' X"), "select 'a\\'");
    }

    #[test]
    fn dollar_quirk_and_comments_in_bodies() {
        assert_eq!(norm("SELECT a$b$C$b$"), "select a$b$C$b$");
        assert_eq!(norm("DO $x$ /* Keep */ $x$"), "do $x$ /* Keep */ $x$");
        assert_eq!(norm("SELECT $1, $A"), "select $1, $a");
    }

    #[test]
    fn every_go_space_collapses() {
        let spaces = [
            "\t", "\n", "\u{b}", "\u{c}", "\r", " ", "\u{85}", "\u{a0}", "\u{1680}", "\u{2000}",
            "\u{2005}", "\u{200a}", "\u{2028}", "\u{2029}", "\u{202f}", "\u{205f}", "\u{3000}",
        ];
        for sp in spaces {
            assert_eq!(
                norm(&format!("{sp}A{sp}{sp}'{sp}b{sp}'{sp}")),
                "a ' b '",
                "{sp:?}"
            );
        }
        // Not white space for Go: zero-width space, U+001C..U+001F, NUL.
        for other in ["\u{200b}", "\u{1c}", "\u{0}"] {
            assert_eq!(norm(&format!("a{other}b")), format!("a{other}b"));
        }
    }

    #[test]
    fn comments_are_separators_and_invalid_utf8_is_kept() {
        assert_eq!(norm("a--x\nb"), "a b");
        assert_eq!(norm("  /* only */  "), "");
        assert_eq!(normalize(b"A\xff\xc2 B"), b"a\xff\xc2 b");
    }
}
