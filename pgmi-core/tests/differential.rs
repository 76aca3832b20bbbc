//! The splitter against PostgreSQL's answers, in CI without PostgreSQL.
//!
//! `differential/postgres.jsonl` holds, for the hand-written cases and 1,500 generated ones
//! (`differential/common.rs`), what PostgreSQL's own parser and scanner (libpg_query, the
//! PostgreSQL 18 sources) say: the top-level semicolons, the comment spans and the first
//! transaction terminator. `scripts/differential.sh --record` wrote it; its first line names
//! the corpus (count and SHA-256), so a changed generator is caught here rather than compared
//! against stale answers. `scripts/differential.sh` runs the same comparison live on 200,000
//! scripts.

#[path = "differential/common.rs"]
mod common;

use common::{Answer, RecordingHeader};

fn recorded() -> (RecordingHeader, Vec<Answer>) {
    let text = include_str!("differential/postgres.jsonl");
    let mut lines = text.lines();
    let header = serde_json::from_str(lines.next().expect("a header")).expect("the header");
    let answers = lines
        .map(|l| serde_json::from_str(l).expect("a recorded answer"))
        .collect();
    (header, answers)
}

#[test]
fn splitter_agrees_with_postgres() {
    let cases = common::ci_corpus();
    let (header, answers) = recorded();
    assert!(
        header == common::header(&cases) && answers.len() == cases.len(),
        "the corpus changed since PostgreSQL's answers were recorded: run scripts/differential.sh --record"
    );
    let mut failures = Vec::new();
    for (case, theirs) in cases.iter().zip(&answers) {
        let ours = common::ours(case);
        if &ours != theirs {
            failures.push(format!(
                "{:?} (standard_conforming_strings {})\n  postgres: {theirs:?}\n  pgmi:     {ours:?}",
                case.sql,
                if case.scs { "on" } else { "off" },
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The corpus must exercise what it claims to.
    let count = |f: &dyn Fn(&common::Case, &Answer) -> bool| {
        cases.iter().zip(&answers).filter(|(c, a)| f(c, a)).count()
    };
    assert!(count(&|c, _| !c.scs) >= 300);
    assert!(count(&|_, a| a.head_end.is_some()) >= 300);
    assert!(count(&|c, _| c.sql.contains("ATOMIC")) >= 300);
    assert!(count(&|_, a| a.comments.as_ref().is_some_and(|c| !c.is_empty())) >= 300);
    assert!(count(&|c, _| c.sql.contains("audit$v1$")) >= 50);
}
