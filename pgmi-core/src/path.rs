//! Path rules of a pgmi project: which files load, how paths are normalised, the columns
//! derived from a path, test and fixture paths (docs/session-api.md, `pgmi_source_view`).
//!
//! Invariants this module keeps:
//! * Session paths are `'/'`-separated and start with `./` (`./migrations/001.sql`).
//!   [`normalize`] turns any input into that form exactly as the original pgmi's
//!   `pgmi_register_file` does, and [`derive`] computes every derived `_pgmi_source`
//!   column from it, so client and server can never disagree about a row.
//! * Every comparison is byte-wise/ASCII: no locale, no Unicode case folding (the original
//!   pgmi compares extensions, fixtures and the root `deploy.sql` with ASCII-only targets).
//! * Nothing here touches the file system; [`crate::project`] applies these rules to a walk
//!   or a bundle.

use std::borrow::Cow;
use std::fmt;

use crate::limits::{MAX_PATH_BYTES, MAX_PATH_DEPTH};

/// The eight SQL extensions, lower-case with the leading dot. The list decides
/// `is_sql_file`, whether `<pgmi-meta>` is parsed, and whether a test file becomes a test.
pub const SQL_EXTENSIONS: [&str; 8] = [
    ".sql", ".ddl", ".dml", ".dql", ".dcl", ".psql", ".pgsql", ".plpgsql",
];

/// The orchestrator script at the project root; never loaded as a project file.
pub const ROOT_DEPLOY_SCRIPT: &str = "deploy.sql";

/// `_pgmi_source` rejects paths deeper than this (`chk_depth_reasonable`).
pub const MAX_DEPTH: i32 = 100;

/// True iff `name` (a file name or a whole path) ends, ASCII case-insensitively, in one of
/// [`SQL_EXTENSIONS`] — the server's `pgmi_is_sql_file` regex `\.(sql|…)$` with `~*`.
/// Only the final extension counts: `x.sql.bak`, `x.sql~`, `x.sqlx` are not SQL.
pub fn is_sql_file(name: &str) -> bool {
    let b = name.as_bytes();
    SQL_EXTENSIONS.iter().any(|ext| {
        b.len() >= ext.len() && b[b.len() - ext.len()..].eq_ignore_ascii_case(ext.as_bytes())
    })
}

/// True iff one path segment hides everything below it: hidden (`.git`, `.env`), or exactly
/// `node_modules` / `__pycache__`.
pub fn is_excluded_segment(segment: &str) -> bool {
    segment.starts_with('.') || segment == "node_modules" || segment == "__pycache__"
}

/// True iff a project-relative path (with or without a leading `./`) is never loaded:
/// any segment excluded by [`is_excluded_segment`], or the root `deploy.sql` (compared
/// ASCII case-insensitively, so `DEPLOY.SQL` too; nested `deploy.sql` files do load).
pub fn is_excluded(rel_path: &str) -> bool {
    let rel = rel_path.strip_prefix("./").unwrap_or(rel_path);
    rel.eq_ignore_ascii_case(ROOT_DEPLOY_SCRIPT) || rel.split('/').any(is_excluded_segment)
}

/// `pgmi_register_file`'s normalisation: trim ASCII spaces at both ends; every `\`
/// becomes `/`; unless the path already starts with `./`, strip any run of leading `./` or
/// `/` and prefix `./`; finally collapse runs of `/`.
pub fn normalize(raw: &str) -> String {
    let slashed = raw.trim_matches(' ').replace('\\', "/");
    let prefixed = if slashed.starts_with("./") {
        slashed
    } else {
        let mut rest = slashed.as_str();
        loop {
            if let Some(r) = rest.strip_prefix("./") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix('/') {
                rest = r;
            } else {
                break;
            }
        }
        format!("./{rest}")
    };
    let mut out = String::with_capacity(prefixed.len());
    for c in prefixed.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// A `_pgmi_source` path with every column the server derives from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath {
    /// Normalised, `./`-prefixed.
    pub path: String,
    /// Last segment (may be empty for `./dir/`, which [`check_source_row`] rejects).
    pub name: String,
    /// `./` or `./a/b/` — everything up to and including the last `/`.
    pub directory: String,
    /// Trailing `.` + ASCII-alphanumeric run of `name`, else `""`.
    pub extension: String,
    /// Directory segments below the root (`path_parts` length − 2).
    pub depth: i32,
    /// `path` split on `/`; the first element is always `"."`.
    pub path_parts: Vec<String>,
    /// Immediate parent directory name; `None` at depth 0.
    pub parent_folder_name: Option<String>,
}

impl SourcePath {
    /// `is_sql_file` column: [`is_sql_file`] of the whole path.
    pub fn is_sql_file(&self) -> bool {
        is_sql_file(&self.path)
    }

    /// `is_test_file` column (`path ~ '(^|/)__tests?__/'`); false for any row that passes
    /// [`check_source_row`], kept because the column exists.
    pub fn is_test_file(&self) -> bool {
        self.path.starts_with("__test__/")
            || self.path.starts_with("__tests__/")
            || is_test_path(&self.path)
    }
}

/// The extension of a file name: the run of ASCII alphanumerics that ends the name, with the
/// `.` right before it; `""` when there is no such run or no `.` before it (`d.tar.gz` →
/// `.gz`, `x.SQL` → `.SQL`, `notes.txt~` / `trail.` / `noext` → `""`).
pub fn extension_of(name: &str) -> &str {
    let b = name.as_bytes();
    let run = b
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let dot = b.len() - run;
    if run > 0 && dot > 0 && b[dot - 1] == b'.' {
        // The run is ASCII, so `dot - 1` is a char boundary.
        &name[dot - 1..]
    } else {
        ""
    }
}

/// Computes every derived column for `raw` exactly as `pgmi_register_file` does, after
/// [`normalize`] (which is the identity on an already-normalised path).
pub fn derive(raw: &str) -> SourcePath {
    let path = normalize(raw);
    let path_parts: Vec<String> = path.split('/').map(str::to_owned).collect();
    // `path` starts with "./", so there are at least two parts.
    let depth = i32::try_from(path_parts.len().saturating_sub(2)).unwrap_or(i32::MAX);
    let name = path_parts.last().cloned().unwrap_or_default();
    let directory = match path.rfind('/') {
        Some(i) => path[..=i].to_owned(),
        None => "./".to_owned(),
    };
    let extension = extension_of(&name).to_owned();
    let parent_folder_name = if depth > 0 {
        path_parts.get(path_parts.len() - 2).cloned()
    } else {
        None
    };
    SourcePath {
        path,
        name,
        directory,
        extension,
        depth,
        path_parts,
        parent_folder_name,
    }
}

/// Test path: the `./` path contains a `/__test__/` or `/__tests__/` segment.
pub fn is_test_path(path: &str) -> bool {
    path.contains("/__test__/") || path.contains("/__tests__/")
}

/// Fixture file name: `_setup.sql` or `_setup.psql`, ASCII case-insensitively.
pub fn is_fixture(filename: &str) -> bool {
    filename.eq_ignore_ascii_case("_setup.sql") || filename.eq_ignore_ascii_case("_setup.psql")
}

/// `directory` of a test file: everything up to and including the last `/`.
pub fn directory_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    }
}

/// Base name: everything after the last `/`.
pub fn file_name_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `_pgmi_test_directory.depth`: segments after the first `/__test__/` or
/// `/__tests__/` of a directory path ending in `/` (0 for the dunder directory itself).
pub fn test_directory_depth(dir: &str) -> i32 {
    let first = [
        dir.find("/__test__/").map(|i| i + 10),
        dir.find("/__tests__/").map(|i| i + 11),
    ]
    .into_iter()
    .flatten()
    .min();
    match first {
        Some(end) => {
            let rest = &dir[end..];
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.is_empty() {
                0
            } else {
                i32::try_from(rest.split('/').count()).unwrap_or(i32::MAX)
            }
        }
        None => 0,
    }
}

/// Every directory segment shaped `__X__` must be `__test__` or `__tests__`
/// (case-sensitive). Returns the offending segment (`"__init__"`).
///
/// Mirrors the original pgmi's non-overlapping regex scan `/__([^/]+)__/`: a match consumes
/// its trailing `/`, so a dunder segment directly after another escapes the check
/// (`./__test__/__x__/f.sql` passes) — a quirk kept for compatibility.
pub fn check_dunder(path: &str) -> Result<(), String> {
    let b = path.as_bytes();
    let mut pos = 0;
    while let Some(off) = path[pos..].find('/') {
        let start = pos + off + 1;
        let Some(len) = path[start..].find('/') else {
            break;
        };
        let end = start + len;
        let seg = &b[start..end];
        if seg.len() >= 5 && seg.starts_with(b"__") && seg.ends_with(b"__") {
            let inner = &seg[2..seg.len() - 2];
            if inner != b"test" && inner != b"tests" {
                return Err(path[start..end].to_owned());
            }
            pos = end + 1; // the match consumed the trailing '/'
        } else {
            pos = end;
        }
    }
    Ok(())
}

/// A path over one of the fixed path caps ([`MAX_PATH_BYTES`], [`MAX_PATH_DEPTH`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathLimit {
    /// The path is `bytes` long.
    TooLong { bytes: usize },
    /// The path sits under `depth` directories.
    TooDeep { depth: usize },
}

impl fmt::Display for PathLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathLimit::TooLong { bytes } => write!(
                f,
                "the path is {bytes} bytes long; pgmi accepts at most {MAX_PATH_BYTES}"
            ),
            PathLimit::TooDeep { depth } => write!(
                f,
                "the path is {depth} directories deep; pgmi accepts at most {MAX_PATH_DEPTH}"
            ),
        }
    }
}

/// Checks a project-relative path (with or without a leading `./`) against the fixed caps,
/// in one pass over its bytes. Every path a walk or a bundle yields goes through this
/// before any per-segment work, so the work per path stays linear and bounded.
pub fn check_limits(rel_path: &str) -> Result<(), PathLimit> {
    let rel = rel_path.strip_prefix("./").unwrap_or(rel_path);
    if rel.len() > MAX_PATH_BYTES {
        return Err(PathLimit::TooLong { bytes: rel.len() });
    }
    let depth = rel.bytes().filter(|&b| b == b'/').count();
    if depth > MAX_PATH_DEPTH {
        return Err(PathLimit::TooDeep { depth });
    }
    Ok(())
}

/// `path`, shortened for an error message when it is long: the first 120 and the last 60
/// characters around an ellipsis, so a 4 kB hostile name does not flood the message.
pub fn abbreviate(path: &str) -> Cow<'_, str> {
    const HEAD: usize = 120;
    const TAIL: usize = 60;
    let chars = path.chars().count();
    if chars <= HEAD + TAIL + 1 {
        return Cow::Borrowed(path);
    }
    let head: String = path.chars().take(HEAD).collect();
    let tail: String = path.chars().skip(chars - TAIL).collect();
    Cow::Owned(format!("{head}…{tail}"))
}

/// A `_pgmi_source` CHECK constraint the row would violate (PostgreSQL would raise 23514).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintViolation {
    /// The constraint name as in the original pgmi's schema (`chk_name_format`, …).
    pub constraint: &'static str,
    /// The normalised path of the row.
    pub path: String,
    /// What is wrong, in words.
    pub detail: &'static str,
}

impl fmt::Display for ConstraintViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "path {} violates check constraint \"{}\" of _pgmi_source: {}",
            self.path, self.constraint, self.detail
        )
    }
}

/// Checks the row against `_pgmi_source`'s CHECK constraints, in the schema's order, so the
/// server can reject what the original pgmi's table would reject — with a message — before
/// inserting anything. Rows from [`derive`] can only fail the name, depth and test-path
/// checks; the others are kept so a hand-built row is checked just as strictly.
pub fn check_source_row(sp: &SourcePath) -> Result<(), ConstraintViolation> {
    let fail = |constraint, detail| {
        Err(ConstraintViolation {
            constraint,
            path: sp.path.clone(),
            detail,
        })
    };
    let p = &sp.path;
    if !p.starts_with("./") {
        return fail("chk_path_format", "the path must start with \"./\"");
    }
    if p.contains('\\') {
        return fail(
            "chk_path_no_backslash",
            "the path must not contain a backslash",
        );
    }
    if p.contains("//") {
        return fail(
            "chk_path_no_double_slash",
            "the path must not contain \"//\"",
        );
    }
    if sp.name.is_empty() || sp.name.contains('/') {
        return fail(
            "chk_name_format",
            "the file name is empty (the path ends with \"/\")",
        );
    }
    if sp.name.trim_matches(' ').is_empty() {
        return fail(
            "chk_name_no_whitespace_only",
            "the file name consists of spaces only",
        );
    }
    let dir_ok = sp.directory.strip_prefix("./").is_some_and(|rest| {
        rest.is_empty()
            || (rest.ends_with('/') && rest[..rest.len() - 1].split('/').all(|s| !s.is_empty()))
    });
    if !dir_ok {
        return fail(
            "chk_directory_format",
            "the directory must look like ./ or ./a/b/",
        );
    }
    if sp.directory.contains('\\') {
        return fail(
            "chk_directory_no_backslash",
            "the directory must not contain a backslash",
        );
    }
    let ext_ok = sp.extension.is_empty()
        || (sp.extension.len() > 1
            && sp.extension.starts_with('.')
            && sp.extension[1..].bytes().all(|c| c.is_ascii_alphanumeric()));
    if !ext_ok {
        return fail(
            "chk_extension_format",
            "the extension must be empty or . plus letters/digits",
        );
    }
    if sp.depth < 0 {
        return fail("chk_depth", "the depth must not be negative");
    }
    if sp.depth > MAX_DEPTH {
        return fail(
            "chk_depth_reasonable",
            "the file is more than 100 directories deep",
        );
    }
    if sp.path_parts.is_empty() {
        return fail("chk_path_parts_not_empty", "path_parts must not be empty");
    }
    if i64::try_from(sp.path_parts.len()).ok() != Some(i64::from(sp.depth) + 2) {
        return fail(
            "chk_depth_path_parts",
            "path_parts must have depth + 2 elements",
        );
    }
    if sp.path_parts.iter().any(String::is_empty) {
        return fail(
            "chk_path_parts_no_empty_strings",
            "the path has an empty segment",
        );
    }
    if sp.path_parts[0] != "." {
        return fail(
            "chk_path_parts_first_element",
            "path_parts must start with \".\"",
        );
    }
    if sp.path_parts.last() != Some(&sp.name) {
        return fail(
            "chk_path_parts_last_element",
            "path_parts must end with the file name",
        );
    }
    if (sp.depth == 0) != sp.parent_folder_name.is_none() {
        return fail(
            "chk_parent_folder_depth",
            "parent_folder_name must be NULL exactly at depth 0",
        );
    }
    if sp
        .parent_folder_name
        .as_deref()
        .is_some_and(|n| n.contains('/'))
    {
        return fail(
            "chk_parent_folder_no_slash",
            "parent_folder_name must not contain \"/\"",
        );
    }
    if p.len() != sp.directory.len() + sp.name.len()
        || !p.starts_with(sp.directory.as_str())
        || !p.ends_with(sp.name.as_str())
    {
        return fail(
            "chk_path_directory_match",
            "the path must equal directory || name",
        );
    }
    if is_test_path(p) {
        return fail(
            "chk_path_is_not_test",
            "files under __test__/ or __tests__/ are tests, not sources",
        );
    }
    Ok(())
}

/// Quotes `s` the way Go's `%q` does (used where the original pgmi's messages quote a path):
/// the one Go quoting of the crate, `meta::go_text::quote`.
pub fn go_quote(s: &str) -> String {
    crate::meta::go_text::quote(s.as_bytes())
}

#[cfg(test)]
mod tests;
