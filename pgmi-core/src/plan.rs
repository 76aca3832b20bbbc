//! The execution plan a session's `pgmi_plan_view` holds, computed offline (docs/session-api.md,
//! "Plan order"), so `metadata plan` shows exactly what a `deploy.sql` reading that view will see.
//!
//! Invariants kept by [`rows`] (each one is a clause of the view's definition in
//! `sql/session.sql`):
//! * every non-test file of the project appears, SQL or not, once per sort key; a file
//!   without metadata, or whose metadata has no sort keys, appears once with its path as
//!   the key;
//! * `id` is the metadata id or `None`; `idempotent` is the metadata flag or `true`;
//!   `description` is the metadata description or `""`; `generic_id` is
//!   [`meta::generic_id`] of the path, for every file;
//! * rows are sorted by the bytes of `(sort_key, path)` — PostgreSQL's `COLLATE "C"` — and
//!   `execution_order` numbers them from 1. Rows that tie on both (a file listing the same
//!   key twice) are identical apart from their number, so the tie order cannot be observed.
//!
//! [`table`] renders the rows as the text table `metadata plan` prints.

use crate::meta::{self, Uuid};
use crate::project::Project;

/// One row of `pgmi_plan_view` (without `content` and `checksum`, which the project's
/// sources hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    /// 1-based position; the view's `execution_order` (a `bigint`).
    pub execution_order: i64,
    /// The file, in `./` form.
    pub path: String,
    /// One of the file's sort keys, or its path.
    pub sort_key: String,
    /// The `<pgmi-meta>` id, when the file has a block.
    pub id: Option<Uuid>,
    /// MD5 of the path, for every file (the fallback identity).
    pub generic_id: Uuid,
    pub idempotent: bool,
    pub description: String,
}

/// The plan of `project`, in execution order.
pub fn rows(project: &Project) -> Vec<PlanRow> {
    let mut rows: Vec<PlanRow> = Vec::with_capacity(project.sources.len());
    for source in &project.sources {
        let path = &source.path.path;
        let generic_id = meta::generic_id(path);
        let (id, idempotent, description, keys) = match &source.metadata {
            Some(m) => (
                Some(m.id),
                m.idempotent,
                m.description.as_str(),
                m.sort_keys.as_slice(),
            ),
            None => (None, true, "", &[][..]),
        };
        let row = |sort_key: &str| PlanRow {
            execution_order: 0,
            path: path.clone(),
            sort_key: sort_key.to_owned(),
            id,
            generic_id,
            idempotent,
            description: description.to_owned(),
        };
        if keys.is_empty() {
            rows.push(row(path));
        } else {
            rows.extend(keys.iter().map(|k| row(k)));
        }
    }
    // `str` orders by bytes, which is what COLLATE "C" compares.
    rows.sort_by(|a, b| {
        a.sort_key
            .cmp(&b.sort_key)
            .then_with(|| a.path.cmp(&b.path))
    });
    for (i, row) in rows.iter_mut().enumerate() {
        row.execution_order = i64::try_from(i + 1).unwrap_or(i64::MAX);
    }
    rows
}

/// Number of distinct files in `rows`.
pub fn file_count(rows: &[PlanRow]) -> usize {
    let mut paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    paths.len()
}

/// `rows` as the text table `metadata plan` prints: a header, then one line per row with
/// columns ORDER, SORT KEY, PATH, ID (the generic id, marked, for a file without a block),
/// IDEMPOTENT, DESCRIPTION; aligned on characters, the last column not padded. Cells are
/// kept on one line (see [`one_line`]).
pub fn table(rows: &[PlanRow]) -> String {
    let header = [
        "ORDER",
        "SORT KEY",
        "PATH",
        "ID",
        "IDEMPOTENT",
        "DESCRIPTION",
    ];
    let mut table: Vec<[String; 6]> = vec![header.map(str::to_owned)];
    for r in rows {
        table.push([
            r.execution_order.to_string(),
            one_line(&r.sort_key),
            one_line(&r.path),
            match r.id {
                Some(id) => id.to_string(),
                None => format!("{} (generic)", r.generic_id),
            },
            r.idempotent.to_string(),
            one_line(&r.description),
        ]);
    }
    let mut widths = [0usize; 6];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// A value as one table cell: control characters escaped, and quoted when it has leading or
/// trailing white space (which is significant in a sort key).
fn one_line(text: &str) -> String {
    let escaped: String = text
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if escaped != escaped.trim() {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{build, RawFile};

    fn project(files: &[(&str, &str)]) -> Project {
        build(
            files
                .iter()
                .map(|(p, c)| RawFile {
                    path: (*p).to_owned(),
                    bytes: c.as_bytes().to_vec(),
                })
                .collect(),
        )
        .unwrap()
    }

    fn meta(id: &str, keys: &[&str]) -> String {
        let keys: String = keys.iter().map(|k| format!("<key>{k}</key>")).collect();
        let keys = if keys.is_empty() {
            String::new()
        } else {
            format!("<sortKeys>{keys}</sortKeys>")
        };
        format!("/* <pgmi-meta id=\"{id}\" idempotent=\"false\">{keys}</pgmi-meta> */\nSELECT 1;\n")
    }

    // The same files and the same order as the live view: byte order of (sort key, path), one
    // row per sort key.
    #[test]
    fn byte_order_and_one_row_per_sort_key() {
        let first = meta("00000000-0000-0000-0000-000000000001", &["~first"]);
        let last = meta("00000000-0000-0000-0000-000000000002", &["~~last"]);
        let multi = meta(
            "00000000-0000-0000-0000-000000000003",
            &["001/000", "zzz/999"],
        );
        let nokeys = meta("00000000-0000-0000-0000-000000000004", &[]);
        let p = project(&[
            ("first.sql", &first),
            ("last.sql", &last),
            ("multi.sql", &multi),
            ("nokeys.sql", &nokeys),
            ("fallback_a.sql", "SELECT 1;"),
            ("fallback-b.sql", "SELECT 1;"),
            ("migrations/002_data.sql", "SELECT 1;"),
            ("setup/functions.sql", "SELECT 1;"),
        ]);
        let plan = rows(&p);
        let order: Vec<String> = plan
            .iter()
            .map(|r| format!("{} {} {}", r.execution_order, r.path, r.sort_key))
            .collect();
        assert_eq!(
            order,
            [
                "1 ./fallback-b.sql ./fallback-b.sql",
                "2 ./fallback_a.sql ./fallback_a.sql",
                "3 ./migrations/002_data.sql ./migrations/002_data.sql",
                "4 ./nokeys.sql ./nokeys.sql",
                "5 ./setup/functions.sql ./setup/functions.sql",
                "6 ./multi.sql 001/000",
                "7 ./multi.sql zzz/999",
                "8 ./first.sql ~first",
                "9 ./last.sql ~~last",
            ]
        );
        assert_eq!(file_count(&plan), 8);
        let multi_rows: Vec<&PlanRow> = plan.iter().filter(|r| r.path == "./multi.sql").collect();
        assert_eq!(multi_rows[0].id, multi_rows[1].id);
        assert!(!multi_rows[0].idempotent);
    }

    #[test]
    fn defaults_for_files_without_metadata() {
        let p = project(&[
            ("migrations/001.sql", "SELECT 1;"),
            ("data/seed.csv", "a,b\n"),
            ("__test__/test_a.sql", "SELECT 1;"),
        ]);
        let plan = rows(&p);
        // Non-SQL files are in the view too; test files are not.
        assert_eq!(plan.len(), 2);
        let row = &plan[1];
        assert_eq!(row.path, "./migrations/001.sql");
        assert_eq!(row.sort_key, row.path);
        assert_eq!(row.id, None);
        assert!(row.idempotent);
        assert_eq!(row.description, "");
        // A pinned value of md5(path)::uuid, the fallback id of a file without metadata.
        assert_eq!(
            row.generic_id.to_string(),
            "18a606ed-2992-a4e9-70c1-b9c7044ab9b8"
        );
        assert_eq!(plan[0].path, "./data/seed.csv");
    }

    #[test]
    fn keys_compare_as_bytes_not_as_text() {
        // Uppercase sorts before lowercase, a space before '.', 'é' (0xC3…) after 'z'.
        let p = project(&[
            (
                "a.sql",
                &meta("00000000-0000-0000-0000-00000000000a", &["z"]),
            ),
            (
                "b.sql",
                &meta("00000000-0000-0000-0000-00000000000b", &["é"]),
            ),
            (
                "c.sql",
                &meta("00000000-0000-0000-0000-00000000000c", &["Z"]),
            ),
            (
                "d.sql",
                &meta("00000000-0000-0000-0000-00000000000d", &[" x"]),
            ),
            ("e.sql", "SELECT 1;"),
        ]);
        let keys: Vec<String> = rows(&p).into_iter().map(|r| r.sort_key).collect();
        assert_eq!(keys, [" x", "./e.sql", "Z", "z", "é"]);
    }

    #[test]
    fn equal_keys_are_ordered_by_path() {
        let p = project(&[
            (
                "b.sql",
                &meta("00000000-0000-0000-0000-00000000000b", &["k", "k"]),
            ),
            (
                "a.sql",
                &meta("00000000-0000-0000-0000-00000000000a", &["k"]),
            ),
        ]);
        let paths: Vec<String> = rows(&p).into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["./a.sql", "./b.sql", "./b.sql"]);
    }

    #[test]
    fn empty_project_has_an_empty_plan() {
        assert!(rows(&Project::default()).is_empty());
    }

    #[test]
    fn table_cells_stay_on_one_line() {
        assert_eq!(one_line("a\nb"), "a\\nb");
        assert_eq!(one_line(" x"), "\" x\"");
        assert_eq!(one_line("./a.sql"), "./a.sql");
    }

    #[test]
    fn table_is_aligned() {
        let p = project(&[
            ("b.sql", "SELECT 1;"),
            ("a/long_name.sql", "SELECT 1;"),
            (
                "c.sql",
                &meta("00000000-0000-0000-0000-00000000000c", &["~ key\n2"]),
            ),
        ]);
        let text = table(&rows(&p));
        assert_eq!(
            text,
            "\
ORDER  SORT KEY           PATH               ID                                              IDEMPOTENT  DESCRIPTION
1      ./a/long_name.sql  ./a/long_name.sql  2d6e6a5e-0c48-0ee4-3e14-6ec1b0a8d0a1 (generic)  true
2      ./b.sql            ./b.sql            GENERIC_B (generic)  true
3      ~ key\\n2           ./c.sql            00000000-0000-0000-0000-00000000000c            false
"
            .replace("2d6e6a5e-0c48-0ee4-3e14-6ec1b0a8d0a1", &meta::generic_id("./a/long_name.sql").to_string())
            .replace("GENERIC_B", &meta::generic_id("./b.sql").to_string())
        );
    }
}
