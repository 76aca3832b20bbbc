//! The differential corpus and what the splitter answers for it; shared by
//! `tests/differential.rs` (CI, against answers recorded from PostgreSQL) and
//! `scripts/differential` (which asks PostgreSQL's own scanner and parser live).
//!
//! A case is a script plus the `standard_conforming_strings` it is parsed with. Its answer:
//! * `semicolons` — byte offsets of the `;` that end top-level statements;
//! * `comments` — byte ranges of every comment token (`--…` without its newline, `/*…*/`);
//!   `None` with `standard_conforming_strings = off`, where the recording does not run
//!   PostgreSQL's scanner (libpg_query);
//! * `head_end` — the byte offset just past the first top-level `COMMIT`/`END`/`ROLLBACK`/
//!   `ABORT` (its `;` included), `None` without one.
//!
//! Every case is valid SQL for PostgreSQL 16 and later: the comparison is with the parser's
//! statement list, which exists only for scripts the server accepts.

#![allow(dead_code)]

use pgmi_core::lexer::postgres::{self, TokenKind};
use pgmi_core::split::{self, Options};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub sql: String,
    pub scs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub semicolons: Vec<usize>,
    pub comments: Option<Vec<(usize, usize)>>,
    pub head_end: Option<usize>,
}

/// The recording's first line: which corpus the answers after it belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingHeader {
    pub cases: usize,
    /// SHA-256 of the cases, each as its JSON line.
    pub corpus_sha256: String,
}

/// The header for `cases`.
pub fn header(cases: &[Case]) -> RecordingHeader {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for case in cases {
        hash.update(serde_json::to_string(case).unwrap());
        hash.update(b"\n");
    }
    RecordingHeader {
        cases: cases.len(),
        corpus_sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// What pgmi-core answers.
pub fn ours(case: &Case) -> Answer {
    let sql = case.sql.as_bytes();
    let options = Options {
        standard_conforming_strings: case.scs,
    };
    let semicolons = split::statements(&case.sql, options)
        .into_iter()
        .filter(|r| r.end > r.start && sql[r.end - 1] == b';')
        .map(|r| r.end - 1)
        .collect();
    // A line comment inside a string continuation is part of the literal to the server.
    let mut in_literal = Vec::new();
    let tokens: Vec<_> = postgres::tokens(sql, case.scs).collect();
    for t in &tokens {
        if matches!(
            t.kind,
            TokenKind::String {
                terminated: true,
                ..
            }
        ) {
            if let Some(next) = postgres::continuation(sql, t.range.end) {
                in_literal.push(t.range.end..next);
            }
        }
    }
    let comments = tokens
        .iter()
        .filter(|t| {
            matches!(
                t.kind,
                TokenKind::LineComment | TokenKind::BlockComment { .. }
            )
        })
        .filter(|t| !in_literal.iter().any(|r| r.contains(&t.range.start)))
        .map(|t| (t.range.start, t.range.end))
        .collect();
    Answer {
        semicolons,
        comments: case.scs.then_some(comments),
        head_end: split::head_end(&case.sql, options),
    }
}

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

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Select-list expressions valid under either setting.
const ITEMS: &[&str] = &[
    "1",
    "'a;b'",
    "'it''s -- not /* a comment'",
    "E'a\\'; COMMIT; \\\\'",
    "e'\\x41;'",
    "E'\\\\'",
    "B'1010'",
    "X'fF'",
    "'a'\n'b;'",
    "'a' -- c;\n 'b'",
    "E'a'\n'\\'; '",
    "'a'\r\n  -- x\n\t'b'",
    "$$a;b$$",
    "$t$ $$ ; $t$",
    "$é$;$é$",
    "$_1$x;$_1$",
    "$a$ $b$ ; $a$",
    "$A$ $a$ ; $A$",
    "$ä1$;$ä$;$ä1$",
    "$a$$a$",
    "1+/*c;*/2",
    "2*/**/3",
    "1 --c;\n+2",
    "1 --c;\r+2",
    "1.5e3",
    ".5",
    "0x1F",
    "1_000",
    "(1)",
    "(SELECT 1)",
    "CASE WHEN true THEN 1 END",
    "ARRAY[1,2]",
    "'x'::text",
    "1 AS end",
    "1 AS case",
];

/// Items valid only with `standard_conforming_strings = on` (`U&'…'` is refused when off,
/// and a backslash before a quote closes the plain string).
const ITEMS_ON: &[&str] = &[
    "U&'\\0041;'",
    "u&'a''b;'",
    "U&'!0041;' UESCAPE '!'",
    "'a\\'",
    "N'x\\'",
    "U&'a\\' UESCAPE '!'",
];

/// Items valid only with `standard_conforming_strings = off`.
const ITEMS_OFF: &[&str] = &["'a\\'; COMMIT; '", "'\\\\'", "N'\\';'", "'a'\n'\\';'"];

const ALIASES: &[&str] = &[
    "",
    "",
    " AS audit$v1$",
    " AS a$$",
    " AS \"a;b\"",
    " AS \"a\"\"b\"",
    " AS U&\"d\\0061t\"",
    " AS é$x$",
    " AS _$$_",
    " AS week_end",
    " AS begin",
    " AS atomic",
    " x$",
    " AS x$y$z",
];

const SPACES: &[&str] = &[
    " ",
    " ",
    "\n",
    "\r\n",
    "\t",
    " /* c; */ ",
    "/* a /* b; */ c */",
    "-- x;\n",
    "--\r",
    "/*/ x; */",
    "/**/",
    "\n-- COMMIT;\n",
    "\x0c",
    "\x0b",
    "/* COMMIT; /*/ */ */",
];

const FIXED: &[&str] = &[
    "BEGIN",
    "START TRANSACTION",
    "COMMIT",
    "COMMIT WORK",
    "COMMIT AND CHAIN",
    "END TRANSACTION",
    "ROLLBACK",
    "ABORT",
    "ROLLBACK AND NO CHAIN",
    "SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s",
    "ROLLBACK TRANSACTION TO s",
    "RELEASE s",
    "COMMIT PREPARED 'x;'",
    "ROLLBACK PREPARED 'x'",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
    "DO $$ BEGIN COMMIT; END $$",
    "DO $x$ BEGIN PERFORM ';'; END $x$",
    "CREATE TABLE \"t;\" (a int, b$ text DEFAULT 'x;')",
    "SELECT begin, atomic FROM t",
    "SELECT begin atomic FROM t",
    "SELECT begin/**/atomic FROM t",
    "SELECT t.end, t.case FROM t",
    "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1",
];

fn items(rng: &mut XorShift, scs: bool) -> String {
    let n = 1 + rng.below(3);
    let mut out = Vec::new();
    for _ in 0..n {
        let extra = if scs { ITEMS_ON } else { ITEMS_OFF };
        let item = if rng.below(5) == 0 {
            rng.pick(extra)
        } else {
            rng.pick(ITEMS)
        };
        let alias = if item.contains(" AS ") {
            ""
        } else {
            rng.pick(ALIASES)
        };
        out.push(format!("{item}{alias}"));
    }
    out.join(",")
}

fn statement(rng: &mut XorShift, scs: bool) -> String {
    match rng.below(10) {
        0..=3 => format!("SELECT{}{}", rng.pick(SPACES), items(rng, scs)),
        4..=5 => rng.pick(FIXED).to_owned(),
        6..=7 => {
            let mut body = String::new();
            for _ in 0..rng.below(4) {
                if rng.below(3) == 0 {
                    body.push_str("SELECT CASE WHEN true THEN (CASE 1 WHEN 1 THEN 2 END) END;");
                } else {
                    body.push_str(&format!("SELECT {};", items(rng, scs)));
                }
                body.push_str(rng.pick(SPACES));
            }
            let head = if rng.below(2) == 0 {
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql"
            } else {
                "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql"
            };
            format!("{head} BEGIN{}ATOMIC {body}END", rng.pick(SPACES))
        }
        8 if scs => String::new(),
        _ => format!("SELECT {} FROM t", items(rng, scs)),
    }
}

/// A deterministic script of 1 to 8 statements.
pub fn script(rng_seed: u64, scs: bool) -> Case {
    let mut rng = XorShift(rng_seed | 1);
    let n = 1 + rng.below(8);
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(rng.pick(SPACES));
        sql.push_str(&statement(&mut rng, scs));
        if i + 1 < n || rng.below(2) == 0 {
            sql.push_str(rng.pick(SPACES));
            sql.push(';');
        }
    }
    if rng.below(2) == 0 {
        sql.push_str(rng.pick(SPACES));
    }
    Case { sql, scs }
}

/// `count` generated cases, alternating the setting (one in four with it off).
pub fn generated(first_seed: u64, count: usize) -> Vec<Case> {
    (0..count as u64)
        .map(|i| {
            script(
                first_seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                i % 4 != 3,
            )
        })
        .collect()
}

/// Hand-written cases, one per disagreement the original pgmi's scanner had with
/// PostgreSQL's and per rule.
pub fn hand_written() -> Vec<Case> {
    let on = |sql: &str| Case {
        sql: sql.to_owned(),
        scs: true,
    };
    let off = |sql: &str| Case {
        sql: sql.to_owned(),
        scs: false,
    };
    vec![
        on("SELECT 1 AS audit$v1$; COMMIT; SELECT 2 AS x$v1$;"),
        on("SELECT $é$ ; COMMIT; $é$; SELECT 2;"),
        on("SELECT $ä$;$ä$ AS a, $_$;$_$; COMMIT; SELECT 1;"),
        on("SELECT 1 -- x\rCOMMIT; SELECT 2;"),
        on("BEGIN; SELECT 1 -- x\r; COMMIT; SELECT 2;"),
        on("SELECT E'a'\n'\\'; COMMIT; '; SELECT 2;"),
        on("SELECT 'a\\'; COMMIT; SELECT 2;"),
        on("SELECT U&'a\\' UESCAPE '!'; COMMIT; SELECT 2;"),
        on("SELECT U&'\\0041' , U&\"a\"\"b\" FROM t; COMMIT; SELECT 1;"),
        on("SELECT 1 /* a /* COMMIT; */ b */; COMMIT /* x */; SELECT 2;"),
        on("SELECT 1 /*/ COMMIT; */; COMMIT; SELECT 2;"),
        on("SELECT 2*/**/3; COMMIT; SELECT 1+/*;*/1;"),
        on("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT week_end FROM t; END; COMMIT; SELECT 1;"),
        on("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS end; SELECT t.case FROM t; END; COMMIT;"),
        on("CREATE PROCEDURE p() LANGUAGE sql BEGIN /* c */ ATOMIC SELECT 1; END; END; SELECT 1;"),
        on("CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC END; SELECT begin atomic FROM t; COMMIT; SELECT 1;"),
        on("CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; COMMIT; SELECT 1;"),
        on("SELECT 'a' -- COMMIT;\n 'b'; COMMIT; SELECT 1;"),
        on("SELECT 'a' /* c */ ; COMMIT; SELECT 1;"),
        on("SELECT B'1;0' , X'A;' ; ROLLBACK AND CHAIN; SELECT 1;"),
        on("SAVEPOINT s; ROLLBACK TO s; COMMIT PREPARED 'a'; END WORK; SELECT 1;"),
        on("SELECT 1;;; COMMIT;;SELECT 2;"),
        on("SELECT 0x1F, 1_000, .5e1 AS e$; COMMIT; SELECT $1;"),
        off("SELECT 'a\\'; COMMIT; '; SELECT 2;"),
        off("SELECT E'a\\'; COMMIT; '; COMMIT; SELECT 2;"),
        off("SELECT N'\\'', 'a'\n'\\';'; COMMIT; SELECT 2;"),
        off("SELECT 'a''\\''; COMMIT; SELECT 2;"),
    ]
}

/// The CI corpus: the hand-written cases and this many generated ones.
pub const CI_GENERATED: usize = 1500;

pub fn ci_corpus() -> Vec<Case> {
    let mut cases = hand_written();
    cases.extend(generated(0x5EED, CI_GENERATED));
    cases
}
