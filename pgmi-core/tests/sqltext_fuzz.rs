//! No-panic and invariant checks for the SQL text modules (lexer, checksum, meta, split) over
//! thousands of pseudo-random and truncated inputs. Deterministic (fixed seeds), no extra
//! dependencies: a xorshift generator picks from fragments that exercise every scanner and XML
//! state, plus raw bytes.

use pgmi_core::{checksum, lexer, meta, split};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "/*",
    "*/",
    "--",
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "'",
    "''",
    "\"",
    "E'",
    "e'",
    "\\",
    "$$",
    "$a$",
    "$A$",
    "$1",
    ";",
    "(",
    ")",
    "COMMIT",
    "commit",
    "END",
    "ROLLBACK",
    "ABORT",
    "WORK",
    "TRANSACTION",
    "AND",
    "CHAIN",
    "TO",
    "PREPARED",
    "BEGIN",
    "ATOMIC",
    "CASE",
    "SELECT 1",
    "é",
    "\u{a0}",
    "\u{3000}",
    "\u{85}",
    "<pgmi-meta ",
    "<pgmi-meta>",
    "</pgmi-meta>",
    "<pgmi:meta ",
    "id=\"550e8400-e29b-41d4-a716-446655440000\"",
    "id='{550e8400-e29b-41d4-a716-446655440000}'",
    "id=\"zzz\"",
    "idempotent=\"true\"",
    "idempotent=\"yes\"",
    "idempotent=''",
    "<description>",
    "</description>",
    "<sortKeys>",
    "</sortKeys>",
    "<key>",
    "</key>",
    "<key/>",
    "/>",
    ">",
    "<",
    "&amp;",
    "&lt;",
    "&#",
    "&#x",
    "41;",
    "&nbsp;",
    "&",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<!DOCTYPE",
    "<?xml version=\"1.0\"?>",
    "<?",
    "?>",
    "xmlns:a=\"u\"",
    "a:",
    "=",
    "\u{0}",
    "\u{1}",
    "x",
    "y",
];

fn random_text(rng: &mut XorShift) -> String {
    let n = rng.below(40);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
    }
    s
}

const ATTRS: &[&str] = &[
    "id=\"550e8400-e29b-41d4-a716-446655440000\"",
    "id=\"urn:uuid:550e8400-e29b-41d4-a716-446655440000\"",
    "id=\"00000000-0000-0000-0000-000000000000\"",
    "id=\"zzz\"",
    "idempotent=\"true\"",
    "idempotent=\"FALSE\"",
    "idempotent=\"yes\"",
    "idempotent=\"\"",
    "sortKey=\"x\"",
    "a:b=\"c\"",
];
const CHILDREN: &[&str] = &[
    "<description>d</description>",
    "<description> </description>",
    "<sortKeys><key>k</key></sortKeys>",
    "<sortKeys><key> </key><key>b</key></sortKeys>",
    "<x><y/></x>",
    "text",
    "<!-- c -->",
    "&amp;",
];

/// A file with one or two metadata-shaped comments, sometimes damaged by a random fragment.
fn random_meta_text(rng: &mut XorShift) -> String {
    let mut s = String::from("SELECT 1;\n");
    for _ in 0..1 + rng.below(2) {
        s.push_str("/* <pgmi-meta");
        for _ in 0..rng.below(4) {
            s.push(' ');
            s.push_str(ATTRS[rng.below(ATTRS.len())]);
        }
        s.push('>');
        for _ in 0..rng.below(4) {
            s.push_str(CHILDREN[rng.below(CHILDREN.len())]);
        }
        s.push_str("</pgmi-meta> */\n");
    }
    if rng.below(3) == 0 {
        let mut at = rng.below(s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.insert_str(at, FRAGMENTS[rng.below(FRAGMENTS.len())]);
    }
    s
}

fn random_bytes(rng: &mut XorShift) -> Vec<u8> {
    let n = rng.below(64);
    (0..n).map(|_| rng.next() as u8).collect()
}

fn check_all(text: &str) {
    // Lexer: the mask keeps the length; pieces cover the input.
    let mask = lexer::mask(text);
    assert_eq!(mask.len(), text.len(), "{text:?}");
    let mut at = 0;
    for p in lexer::pieces(text.as_bytes()) {
        assert_eq!(p.range.start, at);
        assert!(text.is_char_boundary(p.range.start) && text.is_char_boundary(p.range.end));
        at = p.range.end;
    }
    assert_eq!(at, text.len());
    let _ = lexer::block_comments(text);

    // Checksum: collapsed, trimmed output; both hashes are 64 hex digits.
    let norm = checksum::normalize(text.as_bytes());
    assert!(
        !norm.starts_with(b" ") && !norm.ends_with(b" ") && !norm.windows(2).any(|w| w == b"  "),
        "{text:?}"
    );
    assert_eq!(checksum::normalized(text.as_bytes()).len(), 64);

    // Metadata: never panics; errors always name the file.
    if let Err(e) = meta::extract("./f.sql", text) {
        assert!(e.message.contains("./f.sql"), "{e}");
    }

    // Split: the head is a prefix, tail units' own texts follow in order, padding is exact.
    let units = split::split(text);
    if units.len() == 1 {
        assert_eq!(units[0].text, text);
    }
    if units.len() > 1 {
        assert!(text.starts_with(&units[0].text));
        let mut offset = units[0].text.len();
        for unit in &units[1..] {
            // A tail unit is the script's own text from some start after the previous unit
            // (no padding), and knows the line and column it starts at.
            let start = (offset..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .find(|&i| !unit.text.is_empty() && text[i..].starts_with(unit.text.as_str()))
                .unwrap_or_else(|| panic!("unit {unit:?} of {text:?}"));
            let before = &text[..start];
            assert_eq!(
                unit.first_line,
                before.matches('\n').count() + 1,
                "{unit:?}"
            );
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            assert_eq!(
                unit.first_column,
                before[line_start..].chars().count() + 1,
                "{unit:?}"
            );
            offset = start + unit.text.len();
        }
        // Every position in every unit resolves or is cleanly out of range.
        for unit in &units {
            let chars = unit.text.chars().count();
            for pos in [0, 1, chars / 2, chars, chars + 1, chars + 2] {
                let loc = split::locate(&unit.text, pos);
                assert_eq!(loc.is_some(), pos >= 1 && pos <= chars + 1);
            }
        }
    }
}

#[test]
fn random_fragment_texts() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut outcomes = std::collections::BTreeMap::new();
    for _ in 0..4000 {
        let text = if rng.below(2) == 0 {
            random_text(&mut rng)
        } else {
            random_meta_text(&mut rng)
        };
        check_all(&text);
        let outcome = match meta::extract("./f.sql", &text) {
            Ok(None) => "none".to_owned(),
            Ok(Some(_)) => "some".to_owned(),
            Err(e) => format!("{:?}", e.kind),
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    // The generator must reach every outcome, or this test proves little.
    for kind in [
        "none",
        "some",
        "OldFormat",
        "MultipleBlocks",
        "XmlSyntax",
        "XmlValue",
        "Invalid",
    ] {
        assert!(
            outcomes.contains_key(kind),
            "{kind} never produced: {outcomes:?}"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    for _ in 0..4000 {
        let bytes = random_bytes(&mut rng);
        let _ = checksum::normalize(&bytes);
        let _ = lexer::mask_bytes(&bytes);
        check_all(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn every_truncation_of_realistic_files() {
    let files = [
        "/*\n  <pgmi-meta id=\"550e8400-e29b-41d4-a716-446655440000\" idempotent=\"true\">\n    \
         <description>Créer &amp; remplir</description>\n    <sortKeys><key>10/0010</key><key>90/9999</key></sortKeys>\n  \
         </pgmi-meta>\n*/\nCREATE TABLE \"Users\" (id int, note text DEFAULT E'a\\'b');\n\
         CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END;\n\
         DO $body$ BEGIN RAISE NOTICE '-- /* not a comment'; END $body$;\n",
        "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\n\
         -- trailing comment é\nANALYZE t; ROLLBACK TRANSACTION TO SAVEPOINT s; COMMIT AND NO CHAIN\n",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!-- c -->]><pgmi-meta id='{550e8400-e29b-41d4-a716-446655440000}' \
         idempotent=\"1\"><![CDATA[x]]></pgmi-meta>",
    ];
    for file in files {
        let wrapped = format!("/* {file} */");
        for text in [file, wrapped.as_str()] {
            for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                check_all(&text[..end]);
                check_all(&text[end..]);
            }
        }
    }
}
