//! Differential test of pgmi-core's splitter against PostgreSQL's own scanner and parser
//! (libpg_query). See `scripts/differential.sh`.
//!
//! For every case the parser's statement list (`stmt_location`/`stmt_len`; each statement
//! but an unterminated last one ends right before its `;`) gives the top-level semicolons and
//! the first transaction terminator; the scanner's comment tokens give the comment spans
//! (the scanner runs with `standard_conforming_strings = on` only, so spans are compared for
//! those cases). With `--record FILE` the answers for the CI corpus are written as JSON
//! lines (after a header naming the corpus) for `pgmi-core/tests/differential.rs`, which
//! replays them without libpg_query.

use pg_query::protobuf::{node::Node, Token, TransactionStmtKind};
use pg_query::ParserOptions;

#[path = "../../../pgmi-core/tests/differential/common.rs"]
mod common;

use common::{Answer, Case};

/// PostgreSQL's answer, or the parser's error for a script it rejects.
fn postgres(case: &Case) -> Result<Answer, String> {
    let options = if case.scs {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let parsed = pg_query::parse(&case.sql, options).map_err(|e| e.to_string())?;
    let len = case.sql.len();
    let ranges: Vec<(usize, usize)> = parsed
        .protobuf
        .stmts
        .iter()
        .map(|s| {
            let start = s.stmt_location as usize;
            let end = if s.stmt_len == 0 {
                len
            } else {
                start + s.stmt_len as usize
            };
            (start, end)
        })
        .collect();
    let mut comments = None;
    let semicolons = if case.scs {
        // Every `;` token outside a statement ends one (empty statements included).
        let scanned = pg_query::scan(&case.sql).map_err(|e| e.to_string())?;
        let mut spans = Vec::new();
        let mut semis = Vec::new();
        for t in &scanned.tokens {
            let (start, end) = (t.start as usize, t.end as usize);
            if t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32 {
                spans.push((start, end));
            } else if t.token == Token::Ascii59 as i32
                && !ranges.iter().any(|&(s, e)| s <= start && start < e)
            {
                semis.push(start);
            }
        }
        comments = Some(spans);
        semis
    } else {
        // Without the scanner: each statement's `;` sits at its end (the corpus has no empty
        // statements in these cases).
        ranges
            .iter()
            .filter(|&&(_, e)| e < len)
            .map(|&(_, e)| e)
            .collect()
    };
    let head_end = parsed
        .protobuf
        .stmts
        .iter()
        .zip(&ranges)
        .find_map(|(s, &(_, end))| {
            let node = s.stmt.as_ref()?.node.as_ref()?;
            match node {
                Node::TransactionStmt(t)
                    if matches!(
                        t.kind(),
                        TransactionStmtKind::TransStmtCommit
                            | TransactionStmtKind::TransStmtRollback
                    ) =>
                {
                    Some(if end < len { end + 1 } else { len })
                }
                _ => None,
            }
        });
    Ok(Answer {
        semicolons,
        comments,
        head_end,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let record = args
        .iter()
        .position(|a| a == "--record")
        .map(|i| args[i + 1].clone());
    let count: usize = args
        .iter()
        .position(|a| a == "--count")
        .map(|i| args[i + 1].parse().expect("--count N"))
        .unwrap_or(200_000);

    if let Some(path) = record {
        let cases = common::ci_corpus();
        let mut out = serde_json::to_string(&common::header(&cases)).unwrap();
        out.push('\n');
        for case in &cases {
            let answer = postgres(case).unwrap_or_else(|e| {
                panic!("PostgreSQL rejects a corpus case: {e}\n{:?}", case.sql)
            });
            out.push_str(&serde_json::to_string(&answer).unwrap());
            out.push('\n');
        }
        std::fs::write(&path, out).expect("write the recording");
        eprintln!("recorded {} cases in {path}", cases.len());
        return;
    }

    let started = std::time::Instant::now();
    let mut cases = common::hand_written();
    cases.extend(common::generated(0xD1FF, count));
    let (mut compared, mut rejected, mut failed) = (0usize, 0usize, 0usize);
    for case in &cases {
        let theirs = match postgres(case) {
            Ok(a) => a,
            Err(e) => {
                rejected += 1;
                if rejected <= 5 {
                    eprintln!("skipped (PostgreSQL rejects it: {e}): {:?}", case.sql);
                }
                continue;
            }
        };
        compared += 1;
        let ours = common::ours(case);
        if ours != theirs {
            failed += 1;
            if failed <= 20 {
                eprintln!(
                    "MISMATCH (scs {}): {:?}\n  postgres: {theirs:?}\n  pgmi:     {ours:?}",
                    if case.scs { "on" } else { "off" },
                    case.sql
                );
            }
        }
    }
    println!(
        "{compared} cases compared, {rejected} rejected by PostgreSQL, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("{} passed, {failed} failed", compared - failed);
    if failed > 0 || rejected > 0 {
        std::process::exit(1);
    }
}
