//! The rows of the five session tables, derived from a validated project: one model that
//! both encoders read, binary COPY for the uploader ([`super::binary`]) and text COPY for
//! psql scripts (`script.rs`), so the two ways of filling a portable session cannot drift.
//!
//! Every value is computed by `pgmi-core`, exactly as the extension's loader computes it
//! (`pgmi-ext/src/session.rs`): the columns here are the columns it inserts, in the same
//! order, and `size_bytes` is the UTF-8 length of the content.
//!
//! A sixth table exists only in the portable session: `_pgmi_source_statement`, where each
//! project file's statements start (`pgmi_core::execute`), which `pg_temp.pgmi_execute`
//! reads; the extension computes the same when it runs.

use pgmi_core::project::Project;

/// One column value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Text(&'a str),
    Null,
    Int4(i32),
    Int8(i64),
    Bool(bool),
    Uuid(&'a [u8; 16]),
    TextArray(&'a [String]),
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Value<'a> {
        value.map_or(Value::Null, Value::Text)
    }
}

/// The session tables, in the order they are filled (the extension's order, then the
/// portable session's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Source,
    Metadata,
    TestDirectory,
    TestSource,
    Parameter,
    SourceStatement,
}

pub const TABLES: [Table; 6] = [
    Table::Source,
    Table::Metadata,
    Table::TestDirectory,
    Table::TestSource,
    Table::Parameter,
    Table::SourceStatement,
];

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Source => "pg_temp._pgmi_source",
            Table::Metadata => "pg_temp._pgmi_source_metadata",
            Table::TestDirectory => "pg_temp._pgmi_test_directory",
            Table::TestSource => "pg_temp._pgmi_test_source",
            Table::Parameter => "pg_temp._pgmi_parameter",
            Table::SourceStatement => "pg_temp._pgmi_source_statement",
        }
    }

    /// The columns the rows fill, in row order (`_pgmi_parameter` keeps its defaults for
    /// the rest, as with the extension).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Source => &[
                "path",
                "name",
                "directory",
                "extension",
                "depth",
                "content",
                "size_bytes",
                "checksum",
                "pgmi_checksum",
                "path_parts",
                "is_sql_file",
                "is_test_file",
                "parent_folder_name",
            ],
            Table::Metadata => &["path", "id", "idempotent", "sort_keys", "description"],
            Table::TestDirectory => &["path", "parent_path", "depth"],
            Table::TestSource => &["path", "directory", "filename", "content", "is_fixture"],
            Table::Parameter => &["key", "value"],
            Table::SourceStatement => &["path", "statements", "statements_off"],
        }
    }

    /// `COPY <table> (<columns>) FROM STDIN [options]`.
    pub fn copy_statement(self, options: &str) -> String {
        let mut sql = format!(
            "COPY {} ({}) FROM STDIN",
            self.name(),
            self.columns().join(", ")
        );
        if !options.is_empty() {
            sql.push(' ');
            sql.push_str(options);
        }
        sql
    }
}

/// Calls `row` for every row of `table`, in insert order.
pub fn each_row(
    table: Table,
    project: &Project,
    parameters: &[(String, String)],
    mut row: impl FnMut(&[Value<'_>]),
) {
    match table {
        Table::Source => {
            for s in &project.sources {
                row(&[
                    Value::Text(&s.path.path),
                    Value::Text(&s.path.name),
                    Value::Text(&s.path.directory),
                    Value::Text(&s.path.extension),
                    Value::Int4(s.path.depth),
                    Value::Text(&s.content),
                    Value::Int8(s.size_bytes()),
                    Value::Text(&s.checksum),
                    Value::Text(&s.pgmi_checksum),
                    Value::TextArray(&s.path.path_parts),
                    Value::Bool(s.path.is_sql_file()),
                    // false for every row a project can hold (pgmi-core routes test files
                    // elsewhere), as the extension inserts it
                    Value::Bool(false),
                    s.path.parent_folder_name.as_deref().into(),
                ]);
            }
        }
        Table::Metadata => {
            for s in &project.sources {
                if let Some(m) = &s.metadata {
                    row(&[
                        Value::Text(&s.path.path),
                        Value::Uuid(&m.id.0),
                        Value::Bool(m.idempotent),
                        Value::TextArray(&m.sort_keys),
                        Value::Text(&m.description),
                    ]);
                }
            }
        }
        Table::TestDirectory => {
            for d in &project.test_directories {
                row(&[
                    Value::Text(&d.path),
                    d.parent_path.as_deref().into(),
                    Value::Int4(d.depth),
                ]);
            }
        }
        Table::TestSource => {
            for t in &project.test_sources {
                row(&[
                    Value::Text(&t.path),
                    Value::Text(&t.directory),
                    Value::Text(&t.filename),
                    Value::Text(&t.content),
                    Value::Bool(t.is_fixture),
                ]);
            }
        }
        Table::Parameter => {
            for (key, value) in parameters {
                row(&[Value::Text(key), Value::Text(value)]);
            }
        }
        Table::SourceStatement => {
            let (mut on, mut off) = (String::new(), String::new());
            for s in &project.sources {
                statements(&mut on, &s.content, true);
                // Only a backslash inside a '...' string can make the two settings split a
                // file differently: without one, the second scan is skipped.
                let differs = s.content.contains('\\') && {
                    statements(&mut off, &s.content, false);
                    off != on
                };
                row(&[
                    Value::Text(&s.path.path),
                    Value::Text(&on),
                    if differs {
                        Value::Text(&off)
                    } else {
                        Value::Null
                    },
                ]);
            }
        }
    }
}

/// A file's statements as `_pgmi_source_statement` stores them: the text of an `int4[]`
/// literal, three numbers per statement: the 1-based byte offset of its first token in the
/// UTF-8 text, and its line and column (characters). Text, not an array, because the server
/// takes text in a COPY at the cost of a copy, and an array at one call per element.
fn statements(out: &mut String, content: &str, standard_conforming_strings: bool) {
    use std::fmt::Write as _;
    out.clear();
    out.push('{');
    let options = pgmi_core::split::Options {
        standard_conforming_strings,
    };
    for (i, st) in pgmi_core::execute::file_statements(content, options)
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{},{},{}", st.start + 1, st.line, st.column);
    }
    out.push('}');
}

/// Rows `table` gets from `project` and `parameters` (without building them).
pub fn row_count(table: Table, project: &Project, parameters: &[(String, String)]) -> usize {
    match table {
        Table::Source => project.sources.len(),
        Table::Metadata => project
            .sources
            .iter()
            .filter(|s| s.metadata.is_some())
            .count(),
        Table::TestDirectory => project.test_directories.len(),
        Table::TestSource => project.test_sources.len(),
        Table::Parameter => parameters.len(),
        Table::SourceStatement => project.sources.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgmi_core::project::{build, RawFile};

    #[test]
    fn row_count_matches_the_rows() {
        let file = |path: &str, text: &str| RawFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
        };
        let project = build(vec![
            file(
                "a.sql",
                "/*\n<pgmi-meta id=\"5b0c2a1e-7c1d-4a8e-9f00-000000000001\" idempotent=\"true\">\n</pgmi-meta>\n*/\nSELECT 1;",
            ),
            file("b.txt", "notes"),
            file("__test__/_setup.sql", "SELECT 1;"),
            file("__test__/x/test_a.sql", "SELECT 2;"),
        ])
        .expect("valid project");
        let params = vec![("k".to_string(), "v".to_string())];
        for table in TABLES {
            let mut built = 0;
            each_row(table, &project, &params, |values| {
                assert_eq!(values.len(), table.columns().len(), "{table:?}");
                built += 1;
            });
            assert!(built > 0, "{table:?} has rows in this project");
            assert_eq!(row_count(table, &project, &params), built, "{table:?}");
        }
    }

    #[test]
    fn statement_rows_hold_starts_lines_and_columns() {
        let file = |path: &str, text: &str| RawFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
        };
        let project = build(vec![
            file("a.sql", "-- c\nSELECT 1;\n  é; SELECT 2;"),
            file("b.sql", "SELECT 'x\\'; SELECT 2; -- ';\nSELECT 3;"),
            file("c.sql", "SELECT '\\';"),
        ])
        .expect("valid project");
        let mut rows = Vec::new();
        each_row(Table::SourceStatement, &project, &[], |values| {
            rows.push(format!("{values:?}"));
        });
        assert_eq!(
            rows,
            [
                r#"[Text("./a.sql"), Text("{6,2,1,18,3,3,22,3,6}"), Null]"#,
                // a backslash that changes the split with standard_conforming_strings off
                r#"[Text("./b.sql"), Text("{1,1,1,14,1,14,30,2,1}"), Text("{1,1,1,30,2,1}")]"#,
                // one that does not
                r#"[Text("./c.sql"), Text("{1,1,1}"), Null]"#,
            ]
        );
    }
}
