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

fn pg_kinds(sql: &str, scs: bool) -> Vec<(postgres::TokenKind, &str)> {
    postgres::tokens(sql.as_bytes(), scs)
        .map(|t| (t.kind, &sql[t.range]))
        .collect()
}

#[test]
fn postgres_identifiers_absorb_dollars() {
    use postgres::TokenKind::*;
    assert_eq!(
        pg_kinds("audit$v1$ x", true),
        vec![(Word, "audit$v1$"), (Space, " "), (Word, "x")]
    );
    assert_eq!(
        pg_kinds("$1$a$", true),
        vec![
            (Param, "$1"),
            (
                Dollar {
                    tag_len: 3,
                    terminated: false
                },
                "$a$"
            )
        ]
    );
    // `$` + a failed tag is one byte; the rest is an identifier.
    assert_eq!(
        pg_kinds("$a-b$c$", true),
        vec![(Other, "$"), (Word, "a"), (Other, "-"), (Word, "b$c$")]
    );
}

#[test]
fn postgres_dollar_tags_follow_identifier_rules() {
    let dollar = |sql: &str| {
        postgres::tokens(sql.as_bytes(), true).find_map(|t| match t.kind {
            postgres::TokenKind::Dollar {
                tag_len,
                terminated,
            } => Some((tag_len, terminated)),
            _ => None,
        })
    };
    assert_eq!(dollar("$é$;$é$"), Some((4, true)));
    assert_eq!(dollar("$_1$x$_1$"), Some((4, true)));
    assert_eq!(dollar("$1a$x$1a$"), None);
    assert_eq!(dollar("$ab$ $a$ $ab$"), Some((4, true)));
    // `Rules::Reference` (the original pgmi's): ASCII tags only, and `a$b$` opens one.
    assert!(!pieces(b"$\xc3\xa9$").any(|p| matches!(p.kind, PieceKind::Dollar { .. })));
    assert!(pieces(b"a$b$").any(|p| matches!(p.kind, PieceKind::Dollar { .. })));
    assert!(
        !pieces_with(b"a$b$", Rules::POSTGRES).any(|p| matches!(p.kind, PieceKind::Dollar { .. }))
    );
}

#[test]
fn postgres_strings() {
    use postgres::TokenKind::*;
    let s = |escape, terminated| String { escape, terminated };
    // Standard strings take no escapes with the setting on, all of them with it off.
    assert_eq!(pg_kinds("'a\\'", true), vec![(s(false, true), "'a\\'")]);
    assert_eq!(pg_kinds("'a\\''", false), vec![(s(true, true), "'a\\''")]);
    assert_eq!(
        pg_kinds("N'a\\''", false),
        vec![(Prefix, "N"), (s(true, true), "'a\\''")]
    );
    assert_eq!(
        pg_kinds("e'\\''", true),
        vec![(Prefix, "e"), (s(true, true), "'\\''")]
    );
    assert_eq!(
        pg_kinds("xe'\\'", true),
        vec![(Word, "xe"), (s(false, true), "'\\'")]
    );
    assert_eq!(
        pg_kinds("U&'\\'", false),
        vec![(Prefix, "U&"), (s(false, true), "'\\'")]
    );
    assert_eq!(
        pg_kinds("u&\"a\"", true),
        vec![(Prefix, "u&"), (QuotedIdent { terminated: true }, "\"a\"")]
    );
    assert_eq!(
        pg_kinds("B'1'", false),
        vec![(Prefix, "B"), (s(false, true), "'1'")]
    );
    // A continuation keeps the first segment's escape rule, line comments included.
    assert_eq!(
        pg_kinds("E'a' -- c\n '\\''", true),
        vec![
            (Prefix, "E"),
            (s(true, true), "'a'"),
            (Space, " "),
            (LineComment, "-- c"),
            (Space, "\n "),
            (s(true, true), "'\\''")
        ]
    );
    // Without a newline, or across a block comment, there is no continuation.
    assert_eq!(pg_kinds("E'a' '\\'", true)[3], (s(false, true), "'\\'"));
    assert_eq!(
        pg_kinds("E'a'/**/\n'\\'", true)[4],
        (s(false, true), "'\\'")
    );
}

#[test]
fn postgres_comments() {
    use postgres::TokenKind::*;
    // A lone \r ends a line comment.
    assert_eq!(
        pg_kinds("--a\rb", true),
        vec![(LineComment, "--a"), (Space, "\r"), (Word, "b")]
    );
    // `/*` starts a comment even glued to an operator; `*/` inside nests count.
    assert_eq!(
        pg_kinds("2*/**/3", true),
        vec![
            (Number, "2"),
            (Other, "*"),
            (BlockComment { terminated: true }, "/**/"),
            (Number, "3")
        ]
    );
    assert_eq!(
        pg_kinds("/*/ a /* b */ c */x", true)[0],
        (BlockComment { terminated: true }, "/*/ a /* b */ c */")
    );
    let spans = block_comment_spans("a$b$ /* m */ $b$");
    assert_eq!(spans.len(), 1);
    assert_eq!(
        block_comment_spans_with("a$b$ /* m */ $b$", Rules::Reference).len(),
        0
    );
}

#[test]
fn postgres_tokens_cover_input_on_char_boundaries() {
    let sql = "SELECT é$x$, $é$ body $é$, U&'\\0041' UESCAPE '!', 'a'\n'b' -- ü\r/* ß /* */ */";
    let mut at = 0;
    for t in postgres::tokens(sql.as_bytes(), true) {
        assert_eq!(t.range.start, at);
        assert!(t.range.end > at);
        assert!(sql.is_char_boundary(t.range.start) && sql.is_char_boundary(t.range.end));
        at = t.range.end;
    }
    assert_eq!(at, sql.len());
}
