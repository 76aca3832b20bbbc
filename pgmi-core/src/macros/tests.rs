use super::*;

/// Rewrites `input`, checks the newline invariant and returns (text, count).
fn rw(input: &str) -> (String, usize) {
    let out = rewrite(input);
    assert_eq!(
        newlines(&out.text),
        newlines(input),
        "newline count changed for {input:?} -> {:?}",
        out.text
    );
    if out.count == 0 {
        assert_eq!(out.text.as_bytes(), input.as_bytes());
    }
    (out.text, out.count)
}

fn assert_rewrites(input: &str, expected: &str) {
    assert_eq!(rw(input), (expected.to_owned(), 1), "input {input:?}");
}

fn assert_untouched(input: &str) {
    assert_eq!(rw(input), (input.to_owned(), 0), "input {input:?}");
}

const BARE: &str = "CALL pg_temp.pgmi_test(NULL, NULL);";

#[test]
fn accepted_argument_forms() {
    for (input, expected) in [
        ("CALL pgmi_test();", BARE),
        ("CALL pgmi_test(NULL);", BARE),
        ("CALL pgmi_test(null);", BARE),
        ("CALL pgmi_test(NuLl);", BARE),
        (
            "CALL pgmi_test('^./__test__/a');",
            "CALL pg_temp.pgmi_test('^./__test__/a', NULL);",
        ),
        (
            "CALL pgmi_test('pat', 'cb');",
            "CALL pg_temp.pgmi_test('pat', 'cb');",
        ),
        (
            "CALL pgmi_test(NULL, 'cb');",
            "CALL pg_temp.pgmi_test(NULL, 'cb');",
        ),
        (
            "CALL pgmi_test(, 'cb');",
            "CALL pg_temp.pgmi_test(NULL, 'cb');",
        ),
        (
            "CALL pgmi_test(,'cb');",
            "CALL pg_temp.pgmi_test(NULL, 'cb');",
        ),
        ("CALL pgmi_test('');", "CALL pg_temp.pgmi_test('', NULL);"),
        ("CALL pgmi_test('', '');", "CALL pg_temp.pgmi_test('', '');"),
        (
            "CALL pgmi_test('a','s.cb');",
            "CALL pg_temp.pgmi_test('a', 's.cb');",
        ),
    ] {
        assert_rewrites(input, expected);
    }
}

#[test]
fn qualified_and_any_case() {
    assert_rewrites(
        "CALL pg_temp.pgmi_test('p');",
        "CALL pg_temp.pgmi_test('p', NULL);",
    );
    assert_rewrites("CALL pg_temp.pgmi_test();", BARE);
    assert_rewrites("call PGMI_TEST();", BARE);
    assert_rewrites(
        "Call Pg_Temp.PgMi_TeSt(nULL, 'X');",
        "CALL pg_temp.pgmi_test(NULL, 'X');",
    );
}

#[test]
fn white_space_and_newlines_between_tokens() {
    assert_rewrites(
        "CALL\tpgmi_test ( 'a' ,'b' ) ;",
        "CALL pg_temp.pgmi_test('a', 'b');",
    );
    assert_rewrites(
        "CALL\r\n  pgmi_test\n(\n'a'\n,\n'b'\n)\n;",
        "CALL pg_temp.pgmi_test('a', 'b');\n\n\n\n\n\n\n",
    );
    assert_rewrites("CALL\x0Cpgmi_test(\x0C)\x0C;", BARE);
    // A comment is white space on the mask; its newlines are kept as padding.
    assert_rewrites(
        "CALL /* run\n the suite */ pgmi_test(); SELECT 1;",
        "CALL pg_temp.pgmi_test(NULL, NULL);\n SELECT 1;",
    );
    assert_rewrites(
        "CALL pgmi_test() -- x\n;\nSELECT 1;",
        "CALL pg_temp.pgmi_test(NULL, NULL);\n\nSELECT 1;",
    );
}

#[test]
fn trailing_white_space_is_kept_when_there_is_no_semicolon() {
    assert_rewrites(
        "CALL pgmi_test()\nCOMMIT;",
        "CALL pg_temp.pgmi_test(NULL, NULL);\nCOMMIT;",
    );
    assert_rewrites(
        "CALL pgmi_test('a')  \r\n\n\tCOMMIT;",
        "CALL pg_temp.pgmi_test('a', NULL);  \r\n\n\tCOMMIT;",
    );
    // Comments after the call are part of the consumed white space and come back verbatim.
    assert_rewrites(
        "CALL pgmi_test() -- run them\nCOMMIT;",
        "CALL pg_temp.pgmi_test(NULL, NULL); -- run them\nCOMMIT;",
    );
    assert_rewrites(
        "CALL pgmi_test(\n'a'\n)\n\nCOMMIT;",
        "CALL pg_temp.pgmi_test('a', NULL);\n\n\n\nCOMMIT;",
    );
    assert_rewrites("CALL pgmi_test()", BARE);
    assert_rewrites(
        "CALL pgmi_test() \n",
        "CALL pg_temp.pgmi_test(NULL, NULL); \n",
    );
}

#[test]
fn literals_are_cut_from_the_original() {
    // The mask blanks the interiors; the rewrite copies the script's bytes, unescaped.
    assert_rewrites(
        "CALL pgmi_test('é -- /* $$ \\', 'my.cb');",
        "CALL pg_temp.pgmi_test('é -- /* $$ \\', 'my.cb');",
    );
    // A literal's own newline travels with it: no extra padding for it.
    assert_rewrites(
        "CALL pgmi_test('a\nb');\nX",
        "CALL pg_temp.pgmi_test('a\nb', NULL);\nX",
    );
    assert_rewrites(
        "CALL pgmi_test(\n'a\nb',\n'c\n')\n;X",
        "CALL pg_temp.pgmi_test('a\nb', 'c\n');\n\n\nX",
    );
}

#[test]
fn not_matched() {
    for input in [
        "-- CALL pgmi_test();",
        "/* CALL pgmi_test(); */",
        "/* outer /* CALL pgmi_test(); */ still */",
        "SELECT 'CALL pgmi_test();';",
        "SELECT 'x'';CALL pgmi_test();';",
        "SELECT \"CALL pgmi_test()\";",
        "SELECT $$ CALL pgmi_test(); $$;",
        "DO $x$ BEGIN CALL pgmi_test(); END $x$;",
        "DO $$\nBEGIN\n  CALL pgmi_test('a');\nEND\n$$;",
        "CALL pgmi_test(E'pat');",
        "CALL pgmi_test(e'pat');",
        "CALL pgmi_test(U&'pat');",
        "CALL pgmi_test('it''s');",
        "CALL pgmi_test('a', 'it''s');",
        "CALL pgmi_test('pat', NULL);",
        "CALL pgmi_test(NULL, NULL);",
        "CALL pgmi_test(p_pattern => 'x');",
        "CALL pgmi_test('a', p_callback => 'x');",
        "CALL \"pgmi_test\"();",
        "CALL pg_temp.\"pgmi_test\"();",
        "CALL other.pgmi_test();",
        "CALL pg_temp . pgmi_test();",
        "CALL pg_tempo.pgmi_test();",
        "SELECT pgmi_test();",
        "PERFORM pgmi_test();",
        "xCALL pgmi_test();",
        "_CALL pgmi_test();",
        "1CALL pgmi_test();",
        "CALL pgmi_tests();",
        "CALL pgmi_test_x();",
        "CALLpgmi_test();",
        "CALL pgmi_test;",
        "CALL pgmi_test(1);",
        "CALL pgmi_test(NULL::text);",
        "CALL pgmi_test(NULLx);",
        "CALL pgmi_test(,);",
        "CALL pgmi_test('a' 'b');",
        "CALL pgmi_test('a', 'b', 'c');",
        "CALL pgmi_test(('a'));",
        "CALL pgmi_test(",
        "CALL pgmi_test('abc",
        // Unterminated string: the `)` is inside it.
        "CALL pgmi_test('abc);",
        "CALL pgmi_test(, 'abc",
        "CALL pgmi_test($$a$$);",
        "",
        "SELECT 1;\n",
    ] {
        assert_untouched(input);
    }
}

#[test]
fn prefix_rules() {
    // Start of text, or one character that is not [A-Za-z0-9_].
    assert_rewrites("BEGIN;CALL pgmi_test();", &format!("BEGIN;{BARE}"));
    assert_rewrites("(CALL pgmi_test())", &format!("({BARE})"));
    assert_rewrites("x/**/CALL pgmi_test();", &format!("x/**/{BARE}"));
    assert_rewrites("'s'CALL pgmi_test();", &format!("'s'{BARE}"));
    // `.` is a valid prefix: the original pgmi matches the tail of `other.CALL pgmi_test()` too.
    assert_rewrites("x.CALL pgmi_test();", &format!("x.{BARE}"));
    // Any non-ASCII character is outside the class, except the two Go folds into it.
    assert_rewrites("éCALL pgmi_test();", &format!("é{BARE}"));
    assert_untouched("\u{17F}CALL pgmi_test();");
    assert_untouched("\u{212A}CALL pgmi_test();");
}

#[test]
fn go_case_folding_extras() {
    // Go's (?i) uses Unicode simple folding: `s` also matches U+017F.
    assert_rewrites("CALL pgmi_te\u{17F}t();", BARE);
    assert_rewrites("CALL PG_TEMP.PGMI_TE\u{17F}T();", BARE);
    assert_untouched("CALL pgmi_te\u{212A}t();");
}

#[test]
fn find_all_semantics_for_consecutive_macros() {
    // Separated by white space after a `;`: both match.
    let (text, count) = rw("CALL pgmi_test();\nCALL pgmi_test('b');\n");
    assert_eq!(count, 2);
    assert_eq!(
        text,
        format!("{BARE}\nCALL pg_temp.pgmi_test('b', NULL);\n")
    );
    let (text, count) = rw("CALL pgmi_test(); CALL pgmi_test();");
    assert_eq!((text, count), (format!("{BARE} {BARE}"), 2));
    // Glued after the `;`: the `;` was consumed by the first match, no prefix is left.
    let (text, count) = rw("CALL pgmi_test();CALL pgmi_test();");
    assert_eq!((text, count), (format!("{BARE}CALL pgmi_test();"), 1));
    // After a macro without `;`, its trailing white space was consumed.
    let (text, count) = rw("CALL pgmi_test()\nCALL pgmi_test();");
    assert_eq!((text, count), (format!("{BARE}\nCALL pgmi_test();"), 1));
    let (text, count) = rw("CALL pgmi_test()CALL pgmi_test();");
    assert_eq!((text, count), (format!("{BARE}CALL pgmi_test();"), 1));
    // A third macro after the unmatched second one matches again.
    let (text, count) = rw("CALL pgmi_test();CALL pgmi_test(); CALL pgmi_test();");
    assert_eq!(
        (text, count),
        (format!("{BARE}CALL pgmi_test(); {BARE}"), 2)
    );
}

#[test]
fn no_match_returns_input_unchanged() {
    let input = "BEGIN;\n-- CALL pgmi_test();\nSELECT 'é';\r\nCOMMIT;\n\n";
    let out = rewrite(input);
    assert_eq!(out.count, 0);
    assert_eq!(out.text.as_bytes(), input.as_bytes());
    assert_eq!(
        rewrite(""),
        Rewritten {
            text: String::new(),
            count: 0
        }
    );
}

#[test]
fn lines_after_each_macro_are_unchanged() {
    let input = "BEGIN;\nCALL pgmi_test(\n  '^./__test__/a',\n  'public.cb'\n);\nSELECT 1; -- é\n\
                 CALL pgmi_test()\n\nCREATE TABLE t (id int);\nCOMMIT;\n";
    let (text, count) = rw(input);
    assert_eq!(count, 2);
    let old: Vec<&str> = input.split('\n').collect();
    let new: Vec<&str> = text.split('\n').collect();
    assert_eq!(old.len(), new.len());
    assert_eq!(
        new[1],
        "CALL pg_temp.pgmi_test('^./__test__/a', 'public.cb');"
    );
    assert_eq!(new[2..5], ["", "", ""]);
    assert_eq!(new[6], BARE);
    for (i, (o, n)) in old.iter().zip(&new).enumerate() {
        if i != 1 && !(2..5).contains(&i) && i != 6 {
            assert_eq!(o, n, "line {}", i + 1);
        }
    }
}

#[test]
fn multi_byte_neighbours_are_kept() {
    assert_rewrites("é\nCALL pgmi_test()é", &format!("é\n{BARE}é"));
    assert_rewrites("日CALL pgmi_test();日", &format!("日{BARE}日"));
    assert_rewrites("日 CALL pgmi_test() 日", &format!("日 {BARE} 日"));
    assert_rewrites(
        "CALL pgmi_test('日本')\u{1F600}",
        "CALL pg_temp.pgmi_test('日本', NULL);\u{1F600}",
    );
    // A masked multi-byte character inside a comment in the trailing white space.
    assert_rewrites(
        "CALL pgmi_test() /* é */\u{1F600}",
        &format!("{BARE} /* é */\u{1F600}"),
    );
}

#[test]
fn large_inputs_stay_linear() {
    // Each of these would take minutes with a quadratic scan.
    let many = "CALL pgmi_test();\n".repeat(100_000);
    assert_eq!(rw(&many).1, 100_000);
    let failing = "CALL pgmi_test(".repeat(100_000);
    assert_eq!(rw(&failing).1, 0);
    let spaces = format!("CALL{}", " ".repeat(500_000)).repeat(2);
    assert_eq!(rw(&spaces).1, 0);
    let open = format!("CALL pgmi_test('{}", "CALL pgmi_test(".repeat(50_000));
    assert_eq!(rw(&open).1, 0);
}

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "CALL",
    "call",
    " ",
    "\n",
    "\r\n",
    "\t",
    "pgmi_test",
    "PGMI_TEST",
    "pg_temp.",
    "(",
    ")",
    "'",
    "''",
    "'p'",
    ";",
    ",",
    "NULL",
    "--",
    "/*",
    "*/",
    "$$",
    "$x$",
    "\"",
    "E",
    "é",
    "日",
    "\u{17F}",
    "\u{212A}",
    "x",
    "_",
    "CALL pgmi_test(",
    "CALL pgmi_test()",
    "DO ",
    "=>",
    "\\",
];

fn generated(rng: &mut Rng) -> String {
    let n = rng.below(24);
    (0..n)
        .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
        .collect()
}

/// Inserts a fragment at, or cuts the text at, a random char boundary.
fn mutated(rng: &mut Rng, base: &str) -> String {
    let boundaries: Vec<usize> = (0..=base.len())
        .filter(|&i| base.is_char_boundary(i))
        .collect();
    let at = boundaries[rng.below(boundaries.len())];
    if rng.below(4) == 0 {
        base[..at].to_owned()
    } else {
        let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
        format!("{}{frag}{}", &base[..at], &base[at..])
    }
}

#[test]
fn never_panics_and_keeps_newlines_on_generated_inputs() {
    let seeds = [
        "BEGIN;\nCALL pgmi_test('^a', 'cb.f')\nCOMMIT;\n",
        "CALL pgmi_test();CALL pgmi_test()\n CALL pg_temp.pgmi_test(, 'x');",
        "DO $$ CALL pgmi_test(); $$; -- CALL pgmi_test()\n'é' CALL pgmi_test(NULL)",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..600 {
        let input = if round % 2 == 0 {
            generated(&mut rng)
        } else {
            let mut s = seeds[rng.below(seeds.len())].to_owned();
            for _ in 0..=rng.below(3) {
                s = mutated(&mut rng, &s);
            }
            s
        };
        let (text, count) = rw(&input);
        let calls = input.to_ascii_lowercase().matches("call").count();
        assert!(count <= calls, "{input:?}");
        assert!(text.matches("CALL pg_temp.pgmi_test(").count() >= count);
        // Text before the first and after the last match is copied byte for byte.
        let found = find_all(&lexer::mask_bytes(input.as_bytes()));
        assert_eq!(found.len(), count);
        if let (Some(first), Some(last)) = (found.first(), found.last()) {
            assert!(text.starts_with(&input[..first.start]), "{input:?}");
            assert!(text.ends_with(&input[last.end..]), "{input:?}");
        }
    }
}

/// A naive backtracking matcher for the original pgmi's regex, written from the regex text rather
/// than from the forced-step argument `match_at` relies on.
enum Node {
    /// `(^|[^A-Za-z0-9_])` under Go's `(?i)`.
    Prefix,
    /// Case-insensitive literal (Go folds included).
    Lit(&'static str),
    /// `\s*` (min 0) or `\s+` (min 1), greedy.
    Space(usize),
    /// `'[^']*'`.
    Quoted,
    /// `(…)?`, greedy.
    Opt(Vec<Node>),
    /// `(a|b)`, leftmost first.
    Alt(Vec<Vec<Node>>),
}

fn reference_regex() -> Vec<Node> {
    use Node::*;
    vec![
        Prefix,
        Lit("call"),
        Space(1),
        Opt(vec![Lit("pg_temp.")]),
        Lit("pgmi_test"),
        Space(0),
        Lit("("),
        Space(0),
        Opt(vec![Alt(vec![vec![Quoted], vec![Lit("null")]])]),
        Opt(vec![Space(0), Lit(","), Space(0), Quoted]),
        Space(0),
        Lit(")"),
        Space(0),
        Opt(vec![Lit(";")]),
    ]
}

/// Tries `nodes` at `pos`, then the continuation `k`; the first success in Go's priority
/// order wins.
fn naive(s: &str, nodes: &[Node], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((node, rest)) = nodes.split_first() else {
        return k(pos);
    };
    let b = s.as_bytes();
    match node {
        Node::Prefix => {
            if pos == 0 && naive(s, rest, pos, k) {
                return true;
            }
            match s[pos..].chars().next() {
                Some(c)
                    if !(c.is_ascii_alphanumeric()
                        || c == '_'
                        || c == '\u{17F}'
                        || c == '\u{212A}') =>
                {
                    naive(s, rest, pos + c.len_utf8(), k)
                }
                _ => false,
            }
        }
        Node::Lit(word) => {
            let mut p = pos;
            for w in word.chars() {
                match s[p..].chars().next() {
                    Some(c)
                        if c.to_ascii_lowercase() == w
                            || (w == 's' && c == '\u{17F}')
                            || (w == 'k' && c == '\u{212A}') =>
                    {
                        p += c.len_utf8()
                    }
                    _ => return false,
                }
            }
            naive(s, rest, p, k)
        }
        Node::Space(min) => {
            let n = b[pos..]
                .iter()
                .take_while(|c| matches!(c, b'\t' | b'\n' | b'\x0C' | b'\r' | b' '))
                .count();
            (*min..=n).rev().any(|n| naive(s, rest, pos + n, k))
        }
        Node::Quoted => {
            if b.get(pos) != Some(&b'\'') {
                return false;
            }
            match b[pos + 1..].iter().position(|&c| c == b'\'') {
                Some(len) => naive(s, rest, pos + len + 2, k),
                None => false,
            }
        }
        Node::Opt(inner) => {
            naive(s, inner, pos, &mut |p| naive(s, rest, p, k)) || naive(s, rest, pos, k)
        }
        Node::Alt(branches) => branches
            .iter()
            .any(|br| naive(s, br, pos, &mut |p| naive(s, rest, p, k))),
    }
}

/// Match ends as Go's `FindAllIndex` reports them, by trying every start position.
fn naive_find_all(mask: &str) -> Vec<usize> {
    let regex = reference_regex();
    let mut ends = Vec::new();
    let mut from = 0;
    while from <= mask.len() {
        let mut hit = None;
        for start in (from..=mask.len()).filter(|&i| mask.is_char_boundary(i)) {
            let mut end = None;
            if naive(mask, &regex, start, &mut |p| {
                end = Some(p);
                true
            }) {
                hit = end;
                break;
            }
        }
        match hit {
            Some(end) => {
                ends.push(end);
                from = end;
            }
            None => break,
        }
    }
    ends
}

#[test]
fn scanner_agrees_with_a_naive_backtracking_matcher() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut matched = 0;
    for _ in 0..2_000 {
        let input = generated(&mut rng);
        let mask = lexer::mask(&input);
        let ours: Vec<usize> = find_all(mask.as_bytes()).iter().map(|m| m.end).collect();
        assert_eq!(ours, naive_find_all(&mask), "{input:?}");
        matched += ours.len();
    }
    // The generator must actually produce macros for the comparison to mean something.
    assert!(matched > 50, "only {matched} matches generated");
}
