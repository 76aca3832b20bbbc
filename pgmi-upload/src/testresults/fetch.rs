//! Reading `pg_temp.pgmi_test_results()` at the end of a deploy (see the parent module
//! for what the rows mean). Simple-query protocol, like every other statement of the
//! session, so every value arrives as text and is parsed here; a row that does not parse
//! fails the whole read, which the caller treats as "no results".

use postgres::{Client, SimpleQueryMessage};

use super::{StepKind, TestStep};

/// Read the results of this session's current load from `pg_temp.pgmi_test_results()`,
/// which both session kinds define (the extension's keeps them in backend memory, the
/// portable one in prepared statements; both survive rollbacks).
pub fn fetch(client: &mut Client) -> Result<Vec<TestStep>, String> {
    const EXISTS: &str =
        "SELECT pg_catalog.to_regprocedure('pg_temp.pgmi_test_results()') IS NOT NULL";
    let exists = text_rows(client, EXISTS)?
        .first()
        .is_some_and(|row| row.first().and_then(Option::as_deref) == Some("t"));
    if !exists {
        return Ok(Vec::new());
    }
    parse_rows(&text_rows(client, SQL)?)
}

/// The query [`fetch`] runs once it knows the function exists (a macro, so that the
/// session's close can send it inside a longer `concat!`).
macro_rules! results_sql {
    () => {
        "SELECT suite, ordinal, step_type, path, directory, passed, duration_us, sqlstate, message, detail FROM pg_temp.pgmi_test_results() ORDER BY suite, ordinal"
    };
}
pub(crate) use results_sql;
const SQL: &str = results_sql!();

/// The steps of [`SQL`]'s rows.
pub fn parse_rows(rows: &[TextRow]) -> Result<Vec<TestStep>, String> {
    rows.iter().map(|row| parse_row(row)).collect()
}

pub type TextRow = Vec<Option<String>>;

/// One simple-query row as text.
pub fn text_row(row: &postgres::SimpleQueryRow) -> TextRow {
    (0..row.len())
        .map(|i| row.get(i).map(str::to_string))
        .collect()
}

/// All rows of a simple query, as text.
fn text_rows(client: &mut Client, sql: &str) -> Result<Vec<TextRow>, String> {
    let messages = crate::session::retry_once_if_cancelled(client, |c| c.simple_query(sql))
        .map_err(|e| crate::exit::error_chain(&e))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(text_row(row)),
            _ => None,
        })
        .collect())
}

/// One text row of `pgmi_test_results()` (simple-query protocol: every value is text).
fn parse_row(row: &[Option<String>]) -> Result<TestStep, String> {
    let text = |i: usize| row.get(i).cloned().flatten();
    let required = |i: usize, name: &str| {
        text(i).ok_or_else(|| format!("pgmi_test_results() returned no {name}"))
    };
    let int = |i: usize, name: &str| -> Result<i64, String> {
        let value = required(i, name)?;
        value
            .parse()
            .map_err(|_| format!("pgmi_test_results() returned an unreadable {name} {value:?}"))
    };
    let narrow = |i: usize, name: &str| -> Result<i32, String> {
        i32::try_from(int(i, name)?)
            .map_err(|_| format!("pgmi_test_results() returned an out-of-range {name}"))
    };
    Ok(TestStep {
        suite: narrow(0, "suite")?,
        ordinal: narrow(1, "ordinal")?,
        kind: match required(2, "step_type")?.as_str() {
            "test" => StepKind::Test,
            _ => StepKind::Fixture,
        },
        path: required(3, "path")?,
        directory: text(4).unwrap_or_default(),
        passed: required(5, "passed")? == "t",
        duration_us: int(6, "duration_us")?,
        sqlstate: text(7),
        message: text(8),
        detail: text(9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rows_parse() {
        let row: Vec<Option<String>> = [
            Some("2"),
            Some("7"),
            Some("test"),
            Some("./__test__/x.sql"),
            Some("./__test__/"),
            Some("f"),
            Some("4321"),
            Some("22012"),
            Some("Failed in ./__test__/x.sql: division by zero"),
            Some(""),
        ]
        .into_iter()
        .map(|v| v.map(str::to_string))
        .collect();
        let s = parse_row(&row).unwrap();
        assert_eq!(
            (s.suite, s.ordinal, s.kind, s.passed),
            (2, 7, StepKind::Test, false)
        );
        assert_eq!(s.duration_us, 4321);
        let mut bad = row.clone();
        bad[6] = Some("soon".into());
        assert!(parse_row(&bad).unwrap_err().contains("duration_us"));
        bad[6] = None;
        assert!(parse_row(&bad).is_err());
    }
}
