//! The shared lock table and a deploy that would overflow it (SQLSTATE 53200, "out of
//! shared memory", docs/cookbook.md "Large projects and `max_locks_per_transaction`").
//!
//! A transaction keeps every lock it takes until it ends, and all sessions share one lock
//! table with room for about `max_locks_per_transaction × (max_connections +
//! max_prepared_transactions)` locks (plus a slot per background process; one transaction
//! may use far more than its "per transaction" share, but not more than the table).
//!
//! Two things here:
//! * **An offline estimate** ([`estimate`]) of the locks a deploy takes: the project's SQL
//!   files (tests excluded) and `deploy.sql` are cut into statements at every `;` outside
//!   parentheses, strings, quoted names, dollar bodies and comments, as the checksum's
//!   scanner ([`pgmi_core::lexer::pieces`]) sees them: it is about twice as fast as the
//!   deploy's own splitter (14 against 25 ms for 10,000 migrations, measured), and the cases
//!   where the two differ (`BEGIN ATOMIC` bodies, which hold no relation statement, and the
//!   scanner quirks listed in lexer.rs) do not change the count of an estimate. A
//!   statement counts as one *relation statement* when its first words are
//!   `CREATE [modifiers] TABLE|INDEX|VIEW|MATERIALIZED VIEW|SEQUENCE|TRIGGER` (modifiers: `OR
//!   REPLACE`, `TEMP[ORARY]`, `UNLOGGED`, `GLOBAL`, `LOCAL`, `UNIQUE`, `RECURSIVE`,
//!   `CONSTRAINT`, `FOREIGN`) or `ALTER TABLE|INDEX|SEQUENCE|VIEW|MATERIALIZED VIEW`. Each
//!   counts [`LOCKS_PER_STATEMENT`] locks. Rough by design: statements inside `DO` blocks and
//!   functions are not seen, a file that runs twice counts once, and head and tail are not
//!   told apart. One pass over the text, the first few words of each statement.
//! * **The explanation of a 53200** ([`explain`]): how many locks the session held, counted
//!   from the watcher's second connection while the unit ran (a failed transaction releases
//!   its locks at once, before the client can look), the three settings with their values,
//!   and the two ways out.

use serde::Serialize;

/// Locks counted per relation statement. Measured on PostgreSQL 15 with `SELECT count(*)
/// FROM pg_locks WHERE pid = pg_backend_pid()` inside one transaction: `CREATE TABLE` of an
/// `int` column 2–5, with an `int` primary key 5, with a `bigserial` primary key, a unique
/// `text` column and a `text` column 14 (table, TOAST table and index, two indexes,
/// sequence, namespace and type locks); `CREATE INDEX` 1–2, `CREATE VIEW` 2, `ALTER TABLE …
/// ADD COLUMN` 3, `CREATE SEQUENCE` 1. A migration creating a table with its key and an index
/// (the cookbook's example, about 20 locks in two statements) averages 10.
pub const LOCKS_PER_STATEMENT: u64 = 10;

/// The warning is printed when the estimate exceeds this share of the lock table.
pub const WARN_PERCENT: u64 = 80;

/// Where the way out by batches is described.
pub const COOKBOOK: &str =
    "docs/cookbook.md, section \"Large projects and `max_locks_per_transaction`\"";

/// The offline estimate of a deploy's locks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Statements that create or alter a relation.
    pub relation_statements: u64,
    /// [`LOCKS_PER_STATEMENT`].
    pub locks_per_statement: u64,
    /// `relation_statements × locks_per_statement`.
    pub locks: u64,
}

/// The settings that size the shared lock table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub max_locks_per_transaction: i64,
    pub max_connections: i64,
    pub max_prepared_transactions: i64,
}

impl Budget {
    /// `max_locks_per_transaction × (max_connections + max_prepared_transactions)`.
    pub fn capacity(&self) -> i64 {
        self.max_locks_per_transaction
            .saturating_mul(self.max_connections + self.max_prepared_transactions)
    }

    /// `max_locks_per_transaction × (max_connections + max_prepared_transactions) = 10 ×
    /// (8 + 0) = 80`.
    pub fn formula(&self) -> String {
        format!(
            "max_locks_per_transaction × (max_connections + max_prepared_transactions) = {} × ({} + {}) = {}",
            self.max_locks_per_transaction,
            self.max_connections,
            self.max_prepared_transactions,
            self.capacity()
        )
    }
}

/// `lockEstimate` in `--json`: the estimate against the server's table (present when the
/// warning was printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(flatten)]
    pub estimate: Estimate,
    #[serde(flatten)]
    pub budget: Budget,
    /// [`Budget::capacity`].
    pub lock_table: i64,
}

/// Estimate the locks of the project's SQL files (tests excluded) and `deploy.sql`.
pub fn estimate(project: &pgmi_core::project::Project, deploy_sql: &str) -> Estimate {
    // One pass on one thread: the deploy runs this beside the load (run.rs), so more
    // threads would only take cores from a local server.
    let relation_statements = project
        .sources
        .iter()
        .filter(|s| s.path.is_sql_file() && !s.path.is_test_file())
        .map(|s| s.content.as_str())
        .chain(std::iter::once(deploy_sql))
        .map(relation_statements)
        .sum::<u64>();
    Estimate {
        relation_statements,
        locks_per_statement: LOCKS_PER_STATEMENT,
        locks: relation_statements.saturating_mul(LOCKS_PER_STATEMENT),
    }
}

/// How many statements of `sql` create or alter a relation (see the module doc).
pub fn relation_statements(sql: &str) -> u64 {
    use pgmi_core::lexer::{pieces, PieceKind};
    let bytes = sql.as_bytes();
    let mut count = 0;
    let mut depth = 0usize;
    let mut start = 0;
    for piece in pieces(bytes) {
        if piece.kind != PieceKind::Code {
            continue;
        }
        for at in piece.range {
            match bytes[at] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                // `;` is ASCII, so both slices start and end on char boundaries.
                b';' if depth == 0 => {
                    count += u64::from(is_relation_statement(&sql[start..at]));
                    start = at + 1;
                }
                _ => {}
            }
        }
    }
    count + u64::from(is_relation_statement(&sql[start..]))
}

/// Whether one statement (leading white space and comments allowed) creates or alters a
/// relation.
fn is_relation_statement(statement: &str) -> bool {
    const MODIFIERS: &[&str] = &[
        "OR",
        "REPLACE",
        "TEMP",
        "TEMPORARY",
        "UNLOGGED",
        "GLOBAL",
        "LOCAL",
        "UNIQUE",
        "RECURSIVE",
        "CONSTRAINT",
        "FOREIGN",
    ];
    let is = |word: Option<&str>, keywords: &[&str]| {
        word.is_some_and(|w| keywords.iter().any(|k| w.eq_ignore_ascii_case(k)))
    };
    // Words are read one by one, so most statements of a migration (COMMENT ON, INSERT,
    // GRANT …) are settled by their first.
    let mut words = Words {
        text: statement,
        at: 0,
    };
    let first = words.next();
    if is(first, &["CREATE"]) {
        let mut words = words.take(6).skip_while(|w| is(Some(w), MODIFIERS));
        let kind = words.next();
        is(kind, &["TABLE", "INDEX", "VIEW", "SEQUENCE", "TRIGGER"])
            || (is(kind, &["MATERIALIZED"]) && is(words.next(), &["VIEW"]))
    } else if is(first, &["ALTER"]) {
        is(
            words.next(),
            &["TABLE", "INDEX", "SEQUENCE", "VIEW", "MATERIALIZED"],
        )
    } else {
        false
    }
}

/// The leading words of a statement, as written, after white space and comments (`--…`,
/// nested `/*…*/`); it ends at the first character that is neither a word character nor
/// white space.
struct Words<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let mut i = self.at;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_whitespace() {
                i += 1;
            } else if bytes[i..].starts_with(b"--") {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            } else if bytes[i..].starts_with(b"/*") {
                let mut depth = 0usize;
                while i < bytes.len() {
                    if bytes[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            } else if b.is_ascii_alphabetic() || b == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                self.at = i;
                return Some(&self.text[start..i]);
            } else {
                break;
            }
        }
        self.at = bytes.len();
        None
    }
}

/// What the deploy reads from the session once it is loaded: whether
/// `standard_conforming_strings` is off (deploy.sql is then split again) and the three
/// settings that size the lock table (`None` if the server's values cannot be read as
/// numbers).
pub type Settings = (bool, Option<Budget>);

/// The query for [`Settings`]. Both loads send it after their COMMIT, in the load's own
/// message (one round trip fewer); [`read_settings`] sends it alone.
pub const SETTINGS_SQL: &str = "SELECT pg_catalog.current_setting('standard_conforming_strings'), \
                pg_catalog.current_setting('max_locks_per_transaction'), \
                pg_catalog.current_setting('max_connections'), \
                pg_catalog.current_setting('max_prepared_transactions')";

/// [`SETTINGS_SQL`] on its own.
pub fn read_settings(client: &mut postgres::Client) -> Result<Settings, postgres::Error> {
    let rows = client.simple_query(SETTINGS_SQL)?;
    Ok(settings_from_row(crate::session::first_row(&rows)))
}

/// The [`Settings`] in a row of [`SETTINGS_SQL`].
pub fn settings_from_row(row: Option<&postgres::SimpleQueryRow>) -> Settings {
    let Some(row) = row else {
        return (false, None);
    };
    let int = |i: usize| row.get(i).and_then(|v| v.parse::<i64>().ok());
    let budget = match (int(1), int(2), int(3)) {
        (
            Some(max_locks_per_transaction),
            Some(max_connections),
            Some(max_prepared_transactions),
        ) => Some(Budget {
            max_locks_per_transaction,
            max_connections,
            max_prepared_transactions,
        }),
        _ => None,
    };
    (row.get(0) == Some("off"), budget)
}

/// Whether the estimate exceeds [`WARN_PERCENT`] of the table.
pub fn over_budget(estimate: &Estimate, budget: &Budget) -> bool {
    let capacity = budget.capacity().max(0) as u128;
    (estimate.locks as u128) * 100 > capacity * WARN_PERCENT as u128
}

/// The pre-deploy warning (without the `pgmi: warning: ` prefix).
pub fn warning(estimate: &Estimate, budget: &Budget) -> String {
    format!(
        "the project's SQL files create or alter about {} relation(s), which may take about {} locks in one transaction ({} per statement, a rough estimate); \
         the server's shared lock table holds about {} locks for all sessions together ({}), so a head that runs them all in one transaction may fail with \"out of shared memory\" (SQLSTATE 53200); \
         raise max_locks_per_transaction or commit in batches, see {COOKBOOK}",
        estimate.relation_statements,
        estimate.locks,
        estimate.locks_per_statement,
        budget.capacity(),
        budget.formula()
    )
}

/// The most locks the deploying session was seen holding while the unit ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub locks: i64,
    /// How long before the unit ended the count was taken.
    pub before_end: std::time::Duration,
}

/// Add the explanation of a 53200 to `failure`: the count and the settings in DETAIL (before
/// the server's own), the ways out in HINT (after the server's). The message and SQLSTATE
/// stay as they are.
pub fn explain(
    failure: &mut crate::exit::Failure,
    session_pid: Option<i32>,
    held: Result<Held, String>,
    budget: Option<&Budget>,
) {
    let who = match session_pid {
        Some(pid) => format!("the deploying session (pid {pid})"),
        None => "the deploying session".to_string(),
    };
    let mut lines = vec![match held {
        Ok(held) => format!(
            "{who} held at least {} locks: that many were counted from a second connection {:.1} s before it failed (a failed transaction releases its locks at once, so they cannot be counted at the failure itself)",
            held.locks,
            held.before_end.as_secs_f64()
        ),
        Err(why) => format!("how many locks {who} held is unknown: {why}"),
    }];
    match budget {
        Some(budget) => lines.push(format!(
            "the server's shared lock table, which all sessions share, holds about {} locks: {} (plus a slot for each background process); one transaction may take more than max_locks_per_transaction, but not more than the table has free",
            budget.capacity(),
            budget.formula()
        )),
        None => lines.push(
            "the server's shared lock table, which all sessions share, holds about max_locks_per_transaction × (max_connections + max_prepared_transactions) locks (the settings could not be read)".to_string(),
        ),
    }
    if let Some(detail) = failure.detail.take().filter(|d| !d.is_empty()) {
        lines.push(detail);
    }
    failure.detail = Some(lines.join("\n"));
    let raise = match budget {
        Some(b) => format!(
            "raise max_locks_per_transaction (now {}; for example ALTER SYSTEM SET max_locks_per_transaction = {}), which takes a server restart (on a managed service: its parameter group or database flags)",
            b.max_locks_per_transaction,
            (b.max_locks_per_transaction.max(32) * 2)
        ),
        None => "raise max_locks_per_transaction, which takes a server restart (on a managed service: its parameter group or database flags)".to_string(),
    };
    let ways = format!(
        "two ways out: {raise}; or split the head into several transactions (commit in batches), see {COOKBOOK}"
    );
    failure.hint = Some(match failure.hint.take().filter(|h| !h.is_empty()) {
        Some(server) => format!("{server}\n{ways}"),
        None => ways,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_statements_are_counted_by_their_first_words() {
        let sql = "
-- a migration
CREATE TABLE a (id int PRIMARY KEY);
create unique index a_idx on a (id);
/* a /* nested */ comment */ CREATE OR REPLACE VIEW v AS SELECT 1;
CREATE OR REPLACE TEMP VIEW tv AS SELECT 1;
CREATE MATERIALIZED VIEW mv AS SELECT 1;
CREATE UNLOGGED TABLE u (x int);
CREATE TEMPORARY SEQUENCE s;
CREATE CONSTRAINT TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();
CREATE FOREIGN TABLE ft (x int) SERVER s;
ALTER TABLE a ADD COLUMN b text;
ALTER MATERIALIZED VIEW mv RENAME TO mv2;
ALTER INDEX a_idx RENAME TO a_idx2;
";
        assert_eq!(relation_statements(sql), 12);
    }

    #[test]
    fn other_statements_do_not_count() {
        let sql = "
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ CREATE TABLE x (id int) $$;
DO $$ BEGIN CREATE TABLE y (id int); END $$;
SELECT 'CREATE TABLE z (id int);';
INSERT INTO a VALUES (1);
CREATE SCHEMA app;
CREATE FOREIGN DATA WRAPPER w;
ALTER ROLE r SET search_path = app;
-- CREATE TABLE in a comment;
BEGIN; COMMIT;
CREATE TABLEx;
";
        assert_eq!(relation_statements(sql), 0);
        assert_eq!(relation_statements(""), 0);
        // A `;` inside parentheses, an escape string or a standard routine body.
        let sql = "
CREATE TABLE p (a int CHECK (a > 0), b text DEFAULT ';'); ALTER TABLE p ADD c int;
SELECT E'it\\'s; CREATE TABLE x (a int)'; create table y (a int);
CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC INSERT INTO p VALUES (1); SELECT 1; END;
CREATE INDEX ON p (a)";
        assert_eq!(relation_statements(sql), 4);
        assert_eq!(relation_statements("CREATE TABLE t (x int)"), 1);
    }

    #[test]
    fn the_estimate_covers_sources_and_deploy_sql_but_not_tests() {
        let files = vec![
            pgmi_core::project::RawFile {
                path: "migrations/001.sql".into(),
                bytes: b"CREATE TABLE a (id int); CREATE INDEX ON a (id);".to_vec(),
            },
            pgmi_core::project::RawFile {
                path: "data/readme.txt".into(),
                bytes: b"CREATE TABLE not_sql (id int);".to_vec(),
            },
            pgmi_core::project::RawFile {
                path: "__test__/test_a.sql".into(),
                bytes: b"CREATE TABLE in_a_test (id int);".to_vec(),
            },
        ];
        let project = pgmi_core::project::build(files).expect("project");
        let e = estimate(&project, "BEGIN;\nCREATE VIEW v AS SELECT 1;\nCOMMIT;\n");
        assert_eq!(
            e,
            Estimate {
                relation_statements: 3,
                locks_per_statement: LOCKS_PER_STATEMENT,
                locks: 3 * LOCKS_PER_STATEMENT,
            }
        );
    }

    #[test]
    fn the_warning_fires_over_eighty_percent_of_the_table() {
        let budget = Budget {
            max_locks_per_transaction: 10,
            max_connections: 8,
            max_prepared_transactions: 2,
        };
        assert_eq!(budget.capacity(), 100);
        let at = |locks| Estimate {
            relation_statements: locks / 10,
            locks_per_statement: 10,
            locks,
        };
        assert!(!over_budget(&at(80), &budget));
        assert!(over_budget(&at(90), &budget));
        let text = warning(&at(90), &budget);
        assert!(text.contains("10 × (8 + 2) = 100"), "{text}");
        assert!(text.contains(COOKBOOK), "{text}");
    }

    #[test]
    fn a_53200_is_explained_and_keeps_the_server_fields() {
        let mut f = crate::exit::Failure::new(
            crate::exit::Exit::ExecutionFailed,
            "execution failed: ERROR: out of shared memory (SQLSTATE 53200)",
        );
        f.sqlstate = Some("53200".into());
        f.hint = Some("You might need to increase max_locks_per_transaction.".into());
        let budget = Budget {
            max_locks_per_transaction: 64,
            max_connections: 100,
            max_prepared_transactions: 0,
        };
        explain(
            &mut f,
            Some(42),
            Ok(Held {
                locks: 6123,
                before_end: std::time::Duration::from_millis(120),
            }),
            Some(&budget),
        );
        let detail = f.detail.as_deref().unwrap();
        assert!(detail.starts_with("the deploying session (pid 42) held at least 6123 locks: that many were counted from a second connection 0.1 s before it failed"), "{detail}");
        assert!(detail.contains("64 × (100 + 0) = 6400"), "{detail}");
        let hint = f.hint.as_deref().unwrap();
        assert!(hint.starts_with("You might need to increase max_locks_per_transaction.\ntwo ways out: raise max_locks_per_transaction (now 64; for example ALTER SYSTEM SET max_locks_per_transaction = 128)"), "{hint}");
        assert!(hint.contains("restart") && hint.contains("parameter group"));
        assert!(hint.contains("split the head into several transactions"));
        assert!(hint.contains(COOKBOOK));
        assert_eq!(f.sqlstate.as_deref(), Some("53200"));
        assert!(f.message.contains("out of shared memory (SQLSTATE 53200)"));

        let mut g = crate::exit::Failure::new(crate::exit::Exit::ExecutionFailed, "x");
        explain(&mut g, None, Err("no second connection".into()), None);
        assert!(g.detail.as_deref().unwrap().starts_with(
            "how many locks the deploying session held is unknown: no second connection"
        ));
        assert!(g.hint.as_deref().unwrap().starts_with("two ways out"));
    }
}
