//! The splitter against the live server's parser, with `standard_conforming_strings` both
//! ways (libpg_query, used by `scripts/differential.sh`, is the same parser compiled into a
//! library; this checks the setting on the real server too).
//!
//! Each generated script is a run of `SELECT <k>, <literal>` statements full of quoting traps
//! and comments; the server gets the whole script as one simple-query message and returns
//! one row per statement it parsed, so the `k`s it returns must be exactly the statements
//! `pgmi_core::split::statements` finds.

use pgmi_core::split::{self, Options};
use pgmi_tests::connect;
use postgres::SimpleQueryMessage;

/// Literals and comments valid under both settings.
const BOTH: &[&str] = &[
    "'a;b'",
    "'it''s -- /* ;'",
    "E'a\\'; SELECT 99; \\\\'",
    "E'a'\n'\\'; SELECT 99; '",
    "'a' -- ;\n 'b'",
    "$$;$$",
    "$é$ ; $é$",
    "$a$ $b$ ; $a$",
    "B'10'::text || ';'",
    "1 AS audit$v1$",
    "1 /* ; /* ; */ ; */",
    "\"a;b\".x",
];

/// Only with the setting on: a backslash before a quote does not escape it.
const ON: &[&str] = &["'a\\'", "U&'a\\' UESCAPE '!'", "N'\\'"];

/// Only with the setting off: it does.
const OFF: &[&str] = &["'a\\'; SELECT 99; '", "N'\\';'", "'a'\n'\\';'"];

fn script(seed: usize, scs: bool) -> String {
    let extra = if scs { ON } else { OFF };
    let mut out = String::new();
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let statements = 1 + next(6);
    for k in 0..statements {
        let item = if next(3) == 0 {
            extra[next(extra.len())]
        } else {
            BOTH[next(BOTH.len())]
        };
        // `"a;b".x` needs a relation: give it one.
        let from = if item.contains("\"a;b\"") {
            " FROM (SELECT 1 AS x) AS \"a;b\""
        } else {
            ""
        };
        out.push_str(&format!("SELECT {k}, {item}{from};\n"));
    }
    out
}

#[test]
fn server_parses_the_statements_the_splitter_finds() {
    let mut client = connect("postgres");
    for scs in [true, false] {
        client
            .batch_execute(&format!(
                "SET standard_conforming_strings = {}; SET escape_string_warning = off",
                if scs { "on" } else { "off" }
            ))
            .unwrap();
        for seed in 0..300 {
            let sql = script(seed, scs);
            let ours: Vec<String> = split::statements(
                &sql,
                Options {
                    standard_conforming_strings: scs,
                },
            )
            .into_iter()
            .filter(|r| !sql[r.clone()].trim().is_empty())
            .enumerate()
            .map(|(k, _)| k.to_string())
            .collect();
            let theirs: Vec<String> = client
                .simple_query(&sql)
                .unwrap_or_else(|e| panic!("{e:?} for {sql:?}"))
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_owned()),
                    _ => None,
                })
                .collect();
            assert_eq!(ours, theirs, "scs {scs}: {sql:?}");
        }
    }
}

/// A database whose `standard_conforming_strings` is off reads `'a\'` as an unfinished
/// string: the deploy splits deploy.sql the way the session scans it, so the `COMMIT`
/// inside the string is not taken for the head's end.
#[test]
fn the_session_standard_conforming_strings_decides_the_split() {
    let db = pgmi_tests::TestDb::empty("scs_off");
    pgmi_tests::connect("postgres")
        .batch_execute(&format!(
            "ALTER DATABASE {} SET standard_conforming_strings = off",
            db.name
        ))
        .expect("ALTER DATABASE");
    let project = pgmi_tests::Project::with_deploy(
        "CREATE TABLE t (v text);\nINSERT INTO t VALUES ('a\\'; COMMIT; ');\nINSERT INTO t VALUES ('b');\n",
    );
    let run = pgmi_tests::deploy(&project, &db.name, &["--session", "portable", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["executionUnits"], 1, "{}", run.stdout);
    assert_eq!(
        db.text("SELECT string_agg(v, '|' ORDER BY v) FROM t")
            .as_deref(),
        Some("a'; COMMIT; |b")
    );
}
