//! `metadata validate|plan|scaffold`: `<pgmi-meta>` blocks, offline (README, "Other
//! commands").
//!
//! All three read the project with pgmi-core's walk and build — the deploy's own scanner —
//! so a project they accept is one the deploy accepts, with the same exit codes: 10 for a
//! scan or metadata error (the file and, for XML errors, the line are named), 1 for an I/O
//! error. [`scan`] is shared with `info`.
//!
//! * `validate` counts the non-test SQL files (the only files whose metadata is read) with
//!   and without a block and lists ids used by several files. Summary on stderr; with
//!   `--json` an object on stdout:
//!   `totalFiles`, `filesWithMetadata`, `filesWithoutMetadata` (numbers),
//!   `validationPassed` (bool), `duplicateIds` (array of `"<id>: <path>, <path>"`),
//!   `sharedSortKeys` (array of `"\"<key>\": <path>, <path>"`: a warning, never a failure).
//!   Duplicate ids exit 1 (the deploy refuses them with 10; `validate` reports them as a
//!   failed check, like the original pgmi).
//! * `plan` prints what a session's `pgmi_plan_view` will hold, in its `execution_order`:
//!   **one row per (file, sort key)**, every non-test file (SQL or not), files without
//!   metadata or without keys once under their path, byte order of (sort key, path). This
//!   differs on purpose from the original pgmi, which lists each SQL file once under its
//!   smallest key: `deploy.sql` iterates the view, so the view is what users need to see.
//!   With `--json`: `totalFiles`, `totalRows` and `plan`, an array of `executionOrder`,
//!   `path`, `sortKey`, `id` (null without a block), `genericId`, `idempotent`,
//!   `description` — the view's columns except `content` and `checksum`.
//! * `scaffold` plans a block for every non-test SQL file without one: a fresh random
//!   version-4 id, `--idempotent`, and the file's own path as its only sort key, so the
//!   plan's order is the same before and after (`pgmi_core::scaffold` explains why the
//!   original pgmi's `generated/<basename>` key is not used). The blocks are printed on stdout
//!   (the data asked for); `--write` prepends them instead, each file replaced atomically
//!   (a hidden temporary file in the same directory, renamed over it, mode kept), then
//!   scans the project again and checks that it loads and its order is unchanged.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use pgmi_core::meta::{DuplicateIdError, Uuid};
use pgmi_core::plan::{self, PlanRow};
use pgmi_core::project::{self, Project, ProjectError, SourceFile};
use pgmi_core::scaffold::{self, Addition};
use serde::Serialize;

use crate::cli::MetadataCommand;
use crate::exit::{Exit, Failure};
use crate::report;

pub fn run(command: &MetadataCommand) -> Exit {
    let result = match command {
        MetadataCommand::Validate { path, json } => validate(path, *json),
        MetadataCommand::Plan { path, json } => plan_command(path, *json),
        MetadataCommand::Scaffold {
            path,
            write,
            idempotent,
        } => scaffold_command(path, *write, *idempotent),
    };
    match result {
        Ok(exit) => exit,
        Err(failure) => {
            eprint!("{}", report::error_block(&failure));
            failure.exit
        }
    }
}

/// What [`scan`] does with ids used by several files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DuplicateIds {
    /// Fail like the deploy (exit 10).
    Refuse,
    /// Return them (for `validate`).
    Collect,
}

/// Walks and builds the project at `root` exactly as the deploy does (`PGMI_MAX_FILE_SIZE`
/// included). With [`DuplicateIds::Collect`] the ids shared by several files are returned
/// instead of failing; every other check still runs.
pub(super) fn scan(
    root: &Path,
    duplicates: DuplicateIds,
) -> Result<(Project, Option<DuplicateIdError>), Failure> {
    let limits = crate::prepare::limits(&crate::conninfo::process_env)?;
    let raw = project::walk(root, &limits).map_err(crate::prepare::scan_failure)?;
    if duplicates == DuplicateIds::Refuse {
        return Ok((
            project::build(raw).map_err(crate::prepare::scan_failure)?,
            None,
        ));
    }
    let mut built = project::route(raw).map_err(crate::prepare::scan_failure)?;
    project::finish(&mut built.sources).map_err(crate::prepare::scan_failure)?;
    match project::finalize(&built) {
        Ok(()) => Ok((built, None)),
        Err(ProjectError::DuplicateIds(e)) => {
            // `finalize` stopped at the ids; run its remaining checks on a copy without them.
            let without_ids = Project {
                sources: built
                    .sources
                    .iter()
                    .map(|s| SourceFile {
                        metadata: None,
                        ..s.clone()
                    })
                    .collect(),
                ..Project::default()
            };
            project::finalize(&without_ids).map_err(crate::prepare::scan_failure)?;
            Ok((built, Some(*e)))
        }
        Err(e) => Err(crate::prepare::scan_failure(e)),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateJson {
    total_files: usize,
    files_with_metadata: usize,
    files_without_metadata: usize,
    validation_passed: bool,
    duplicate_ids: Vec<String>,
    /// Sort keys given to more than one file: `"<key>: <path>, <path>"` (a warning).
    shared_sort_keys: Vec<String>,
}

fn validate(root: &Path, json: bool) -> Result<Exit, Failure> {
    let (project, duplicates) = scan(root, DuplicateIds::Collect)?;
    let sql: Vec<&SourceFile> = project
        .sources
        .iter()
        .filter(|s| s.path.is_sql_file())
        .collect();
    let with = sql.iter().filter(|s| s.metadata.is_some()).count();
    let lines: Vec<String> = duplicates
        .iter()
        .flat_map(|d| &d.duplicates)
        .map(|(id, paths)| format!("{id}: {}", paths.join(", ")))
        .collect();
    eprintln!(
        "{} SQL file(s) checked (test files excluded): {with} with a <pgmi-meta> block, {} without (ordered by their path)",
        sql.len(),
        sql.len() - with
    );
    let shared = shared_sort_keys(&project);
    for line in &shared {
        eprintln!(
            "pgmi: warning: sort key {line}: these files share a plan position and run in path order"
        );
    }
    if json {
        let body = ValidateJson {
            total_files: sql.len(),
            files_with_metadata: with,
            files_without_metadata: sql.len() - with,
            validation_passed: lines.is_empty(),
            duplicate_ids: lines.clone(),
            shared_sort_keys: shared,
        };
        report::print_stdout(&to_json(&body));
    }
    match duplicates {
        None => {
            eprintln!("Validation passed: no id is used twice");
            Ok(Exit::Success)
        }
        // The deploy's own text and hint, but as a failed check (exit 1).
        Some(e) => {
            let e = ProjectError::DuplicateIds(Box::new(e));
            let failure = Failure::new(Exit::General, e.to_string());
            Err(match e.hint() {
                Some(hint) => failure.with_hint(hint),
                None => failure,
            })
        }
    }
}

/// Sort keys that more than one file declares, as `"<key>: <path>, <path>"`, in key order.
/// Not an error (the original pgmi allows it, and the plan orders such files by path), but
/// rarely meant: two migrations given the same key by copy and paste run in whatever order
/// their names happen to sort.
fn shared_sort_keys(project: &pgmi_core::project::Project) -> Vec<String> {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for source in &project.sources {
        let Some(meta) = &source.metadata else {
            continue;
        };
        for key in &meta.sort_keys {
            let paths = by_key.entry(key.as_str()).or_default();
            if !paths.contains(&source.path.path.as_str()) {
                paths.push(source.path.path.as_str());
            }
        }
    }
    by_key
        .into_iter()
        .filter(|(_, paths)| paths.len() > 1)
        .map(|(key, mut paths)| {
            paths.sort_unstable();
            format!("{key:?}: {}", paths.join(", "))
        })
        .collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanJson<'a> {
    total_files: usize,
    total_rows: usize,
    plan: Vec<PlanRowJson<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanRowJson<'a> {
    execution_order: i64,
    path: &'a str,
    sort_key: &'a str,
    id: Option<String>,
    generic_id: String,
    idempotent: bool,
    description: &'a str,
}

fn plan_command(root: &Path, json: bool) -> Result<Exit, Failure> {
    let (project, _) = scan(root, DuplicateIds::Refuse)?;
    let rows = plan::rows(&project);
    let files = plan::file_count(&rows);
    if json {
        let body = PlanJson {
            total_files: files,
            total_rows: rows.len(),
            plan: rows
                .iter()
                .map(|r| PlanRowJson {
                    execution_order: r.execution_order,
                    path: &r.path,
                    sort_key: &r.sort_key,
                    id: r.id.map(|id| id.to_string()),
                    generic_id: r.generic_id.to_string(),
                    idempotent: r.idempotent,
                    description: &r.description,
                })
                .collect(),
        };
        report::print_stdout(&to_json(&body));
    } else {
        report::print_stdout(&plan::table(&rows));
    }
    eprintln!(
        "{} row(s) for {files} file(s): as in pgmi_plan_view, a file runs once per sort key, and a file without keys once under its path",
        rows.len()
    );
    Ok(Exit::Success)
}

fn scaffold_command(root: &Path, write: bool, idempotent: bool) -> Result<Exit, Failure> {
    let (project, _) = scan(root, DuplicateIds::Refuse)?;
    let mut taken: HashSet<Uuid> = project
        .sources
        .iter()
        .filter_map(|s| s.metadata.as_ref().map(|m| m.id))
        .collect();
    let mut additions: Vec<(Addition, &SourceFile)> = Vec::new();
    let mut refused = 0usize;
    for source in project
        .sources
        .iter()
        .filter(|s| s.path.is_sql_file() && s.metadata.is_none())
    {
        let id = loop {
            let id = scaffold::uuid_v4(random_bytes());
            if taken.insert(id) {
                break id;
            }
        };
        match scaffold::plan(&source.path.path, &source.content, id, idempotent) {
            Ok(addition) => additions.push((addition, source)),
            Err(e) => {
                refused += 1;
                eprintln!("pgmi: warning: {e}");
            }
        }
    }
    if additions.is_empty() {
        eprintln!(
            "Nothing to scaffold: every non-test SQL file has a <pgmi-meta> block{}",
            if refused > 0 {
                " or was refused (see the warnings)"
            } else {
                ""
            }
        );
        return Ok(Exit::Success);
    }
    if !write {
        let mut out = String::new();
        for (a, _) in &additions {
            out.push_str(&format!("==> {} <==\n{}\n\n", a.path, a.block));
        }
        report::print_stdout(&out);
        eprintln!(
            "{} block(s) to add; nothing written. Run again with --write to prepend them (ids are generated afresh on each run)",
            additions.len()
        );
        return Ok(Exit::Success);
    }

    let before = order(&plan::rows(&project));
    for (written, (addition, source)) in additions.iter().enumerate() {
        prepend(root, addition, &source.content).map_err(|f| {
            if written > 0 {
                f.context(&format!(
                    "{written} file(s) already have their block; stopped"
                ))
            } else {
                f
            }
        })?;
        eprintln!("Added a <pgmi-meta> block to {}", addition.path);
    }
    let (after, _) = scan(root, DuplicateIds::Refuse)
        .map_err(|f| f.context("the project no longer scans after scaffolding"))?;
    if order(&plan::rows(&after)) != before {
        return Err(Failure::new(
            Exit::General,
            "the execution order changed after scaffolding; compare `metadata plan` with your version control",
        ));
    }
    eprintln!(
        "Wrote {} block(s); the project scans and its execution order is unchanged",
        additions.len()
    );
    Ok(Exit::Success)
}

/// What must not change when blocks are added: which file runs at which position.
fn order(rows: &[PlanRow]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.path.clone(), r.sort_key.clone()))
        .collect()
}

/// Prepends `addition` to its file below `root`, provided the file still holds `scanned`
/// (BOM aside): through a hidden temporary file beside it (skipped by a concurrent scan),
/// flushed to disk, given the original's permissions, then renamed over it.
fn prepend(root: &Path, addition: &Addition, scanned: &str) -> Result<(), Failure> {
    let rel = addition.path.strip_prefix("./").unwrap_or(&addition.path);
    let file = root.join(rel);
    let io = |what: &str, e: std::io::Error| {
        Failure::new(
            Exit::General,
            format!("could not {what} {}: {e}", addition.path),
        )
    };
    let original = std::fs::read(&file).map_err(|e| io("read", e))?;
    if original.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&original) != scanned.as_bytes() {
        return Err(Failure::new(
            Exit::General,
            format!(
                "{} changed while scaffolding; nothing was written to it",
                addition.path
            ),
        )
        .with_hint("run metadata scaffold again"));
    }
    let permissions = std::fs::metadata(&file)
        .map_err(|e| io("read", e))?
        .permissions();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = file.with_file_name(format!(".{name}.pgmi-scaffold-{}.tmp", std::process::id()));
    let result = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        out.write_all(&addition.apply(&original))?;
        out.sync_all()?;
        drop(out);
        std::fs::set_permissions(&temp, permissions)?;
        std::fs::rename(&temp, &file)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(io("write", e));
    }
    Ok(())
}

/// 16 random bytes for a version-4 id: the kernel's generator where there is one; elsewhere
/// the standard library's per-process random hash keys, which the OS seeds.
fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    #[cfg(unix)]
    {
        use std::io::Read;
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .is_ok()
        {
            return bytes;
        }
    }
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    for (i, half) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        half.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes
}

/// Pretty JSON with a trailing newline.
fn to_json(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    const DUP: &str =
        "/* <pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\" idempotent=\"true\"/> */\n";

    #[test]
    fn duplicates_are_collected_or_refused() {
        let dir = project(&[("a.sql", DUP), ("b.sql", DUP), ("c.sql", "SELECT 1;")]);
        let (p, dups) = scan(dir.path(), DuplicateIds::Collect).unwrap();
        assert_eq!(p.sources.len(), 3);
        let dups = dups.unwrap().duplicates;
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].1, ["./a.sql", "./b.sql"]);
        let refused = scan(dir.path(), DuplicateIds::Refuse).unwrap_err();
        assert_eq!(refused.exit, Exit::InvalidConfig);
        assert!(refused.message.contains("./a.sql, ./b.sql"));
    }

    #[test]
    fn collecting_duplicates_still_runs_the_other_checks() {
        // Too deep for `_pgmi_source` (depth > 100): a check `finalize` runs after the ids.
        let deep = format!("{}x.sql", "d/".repeat(101));
        let dir = project(&[("a.sql", DUP), ("b.sql", DUP), (&deep, "SELECT 1;")]);
        let e = scan(dir.path(), DuplicateIds::Collect).unwrap_err();
        assert_eq!(e.exit, Exit::InvalidConfig);
        assert!(e.message.contains("x.sql"), "{}", e.message);
    }

    #[test]
    fn metadata_errors_print_their_hint_once_and_the_file_line() {
        let dir = project(&[(
            "m.sql",
            "-- one\n-- two\n/* header\n<pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\" idempotent=\"true\">\n<sortKeys>\n</pgmi-meta> */\n",
        )]);
        let e = scan(dir.path(), DuplicateIds::Refuse).unwrap_err();
        assert_eq!(e.exit, Exit::InvalidConfig);
        assert!(
            e.message.starts_with(
                "metadata error in ./m.sql (line 4): element <sortKeys> closed by </pgmi-meta>"
            ),
            "{}",
            e.message
        );
        assert!(!e.message.contains("Hint"), "{}", e.message);
        assert_eq!(
            e.detail.as_deref(),
            Some("line 4 of the comment holding the block is line 6 of ./m.sql")
        );
        let block = report::error_block(&e);
        assert_eq!(
            block.matches("Check that all XML tags").count(),
            1,
            "{block}"
        );
    }

    #[test]
    fn validation_errors_keep_their_numbered_list() {
        let dir = project(&[(
            "v.sql",
            "/* <pgmi-meta id=\"6f1c1f0e-6a39-4a55-9a65-2d1b8c4e0a11\"/> */\n",
        )]);
        let e = scan(dir.path(), DuplicateIds::Refuse).unwrap_err();
        assert!(
            e.message.starts_with(
                "invalid PGMI metadata in ./v.sql:\n  1. idempotent attribute is required"
            ),
            "{}",
            e.message
        );
        assert!(!e.message.contains("Generate template"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap().contains("Generate template"));
    }

    #[test]
    fn prepend_replaces_the_file_and_keeps_its_mode() {
        let dir = project(&[("x.sql", "\u{feff}SELECT 1;\n")]);
        let file = dir.path().join("x.sql");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        let id = scaffold::uuid_v4([7; 16]);
        let a = scaffold::plan("./x.sql", "SELECT 1;\n", id, true).unwrap();
        prepend(dir.path(), &a, "SELECT 1;\n").unwrap();
        let bytes = std::fs::read(&file).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF/*\n<pgmi-meta id="));
        assert!(bytes.ends_with(b"*/\nSELECT 1;\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        // The file changed since the plan: refused, untouched.
        let again = prepend(dir.path(), &a, "SELECT 1;\n").unwrap_err();
        assert!(again.message.contains("changed while scaffolding"));
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
    }

    #[test]
    fn random_ids_differ() {
        let a = scaffold::uuid_v4(random_bytes());
        let b = scaffold::uuid_v4(random_bytes());
        assert_ne!(a, b);
        assert_eq!(a.to_string().as_bytes()[14], b'4');
    }
}
