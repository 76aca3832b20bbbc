//! From raw project files to the rows of the session tables (docs/session-api.md).
//!
//! [`walk`] reads a directory (client); [`crate::bundle::read`] unpacks an upload (server);
//! both hand [`RawFile`]s to [`build`], so the client rejects exactly what the server
//! would, before connecting.
//!
//! Invariants kept by [`build`]:
//! * Files are processed in byte order of their path; the first failing file stops it.
//!   Per file: strip one UTF-8 BOM → dunder check → NUL check → UTF-8 check → route
//!   (the original pgmi's order). Then duplicate `<pgmi-meta>` ids, then the `_pgmi_source`
//!   CHECK constraints (which the original pgmi meets only at insert time, after all scan
//!   errors — so they are reported last here too).
//! * Source paths are `./` + the relative path, and must be unchanged by
//!   [`path::normalize`]: a name the server would silently rewrite (trailing spaces, a
//!   backslash) is rejected instead of being stored under a different name.
//! * Nothing is quadratic: test-directory parents are found through a hash set, walking
//!   the ancestors of each directory once.

mod error;
mod walk;

use std::collections::HashSet;

pub use error::{ErrorKind, ProjectError};
pub use walk::{walk, walk_observed};

use crate::checksum;
use crate::meta::{self, Metadata};
use crate::path::{self, SourcePath};

/// One file of a project as read from disk or a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFile {
    /// Relative, `/`-separated, no leading `./` (`migrations/001.sql`).
    pub path: String,
    /// Exact bytes, BOM included.
    pub bytes: Vec<u8>,
}

/// A `_pgmi_source` row (plus its `_pgmi_source_metadata` row when `metadata` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path and every column derived from it.
    pub path: SourcePath,
    /// The text, BOM stripped.
    pub content: String,
    /// Raw SHA-256 hex of `content`'s bytes ([`checksum::raw`]).
    pub checksum: String,
    /// Normalised SHA-256 hex ([`checksum::normalized`]).
    pub pgmi_checksum: String,
    /// Parsed `<pgmi-meta>`; only ever set for SQL files.
    pub metadata: Option<Metadata>,
}

impl SourceFile {
    /// `size_bytes`: the UTF-8 length of the content.
    pub fn size_bytes(&self) -> i64 {
        i64::try_from(self.content.len()).unwrap_or(i64::MAX)
    }
}

/// A `_pgmi_test_directory` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDirectory {
    /// `./…/__test__/…/`, ending in `/`.
    pub path: String,
    /// Nearest proper ancestor that is itself a row.
    pub parent_path: Option<String>,
    /// Segments after the first `__test__`/`__tests__` directory.
    pub depth: i32,
}

/// A `_pgmi_test_source` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSource {
    /// `./` path as found (no server-side normalisation for tests).
    pub path: String,
    /// Up to and including the last `/`; always a [`TestDirectory`] path.
    pub directory: String,
    /// Base name.
    pub filename: String,
    /// The text, BOM stripped.
    pub content: String,
    /// `_setup.sql` / `_setup.psql`, ASCII case-insensitively.
    pub is_fixture: bool,
}

/// Everything the session tables hold about a project's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Project {
    /// Non-test files, SQL or not, in byte order of path.
    pub sources: Vec<SourceFile>,
    /// Test directories ordered by depth, then path (the insert order the FK needs).
    pub test_directories: Vec<TestDirectory>,
    /// SQL files under test directories, in byte order of path.
    pub test_sources: Vec<TestSource>,
    /// Every file scanned, including non-SQL test files that are stored nowhere; excludes
    /// the root `deploy.sql` and excluded paths (the summary's `filesLoaded`).
    pub files_loaded: usize,
}

impl Project {
    /// Sources that are SQL files (the load summary's `sql_files`).
    pub fn sql_files(&self) -> usize {
        self.sources.iter().filter(|s| s.path.is_sql_file()).count()
    }

    /// Bytes of text stored: every source's and test file's content (the summary's `bytes`).
    pub fn content_bytes(&self) -> usize {
        self.sources.iter().map(|s| s.content.len()).sum::<usize>()
            + self
                .test_sources
                .iter()
                .map(|t| t.content.len())
                .sum::<usize>()
    }
}

/// Validates and routes `files` (any order; excluded paths are ignored) into a [`Project`].
///
/// The three phases are public so that the server can pipeline them (insert the first
/// sources while later ones are still being hashed); `build` is their plain composition.
pub fn build(files: Vec<RawFile>) -> Result<Project, ProjectError> {
    let mut project = route(files)?;
    finish_sources(&mut project.sources, Work::All)?;
    finalize(&project)?;
    Ok(project)
}

/// [`build`] without the checksums, which cannot fail: every check and every error is the
/// same, and the sources' `checksum` and `pgmi_checksum` are left empty until [`hash`].
/// For the client of an extension session, which never sends them (the server computes
/// its own): hashing was the larger part of checking a project offline.
pub fn build_unhashed(files: Vec<RawFile>) -> Result<Project, ProjectError> {
    let mut project = route(files)?;
    finish_sources(&mut project.sources, Work::Metadata)?;
    finalize(&project)?;
    Ok(project)
}

/// Fill in the checksums [`build_unhashed`] left empty (over threads, as in [`build`]).
pub fn hash(project: &mut Project) {
    // Metadata was parsed and checked already; only the checksums are computed.
    let _ = finish_sources(&mut project.sources, Work::Checksums);
}

/// Phase 1, cheap and sequential: per-file checks (BOM, dunder, NUL, UTF-8) and routing. Sources
/// come back without checksums or metadata (see [`finish`]); test directories are complete.
///
/// When a file fails here, the sources before it still get their metadata checked (in
/// parallel), so the error returned is the first in path order, as in a walk.
pub fn route(mut files: Vec<RawFile>) -> Result<Project, ProjectError> {
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut router = Router::default();
    for file in files {
        if let Err(e) = router.push(file) {
            let mut project = router.finish();
            finish_sources(&mut project.sources, Work::Metadata)?;
            return Err(e);
        }
    }
    Ok(router.finish())
}

/// [`route`] one file at a time, for files that arrive in order (a bundle being unpacked).
/// After an error the router must not be fed again.
/// Whether `path` may follow `previous` in a stream of files: strictly ascending byte
/// order (the order bundles are written in, which lets a loader check uniqueness and
/// route files without holding them all).
pub fn ascends(previous: Option<&str>, path: &str) -> bool {
    previous.is_none_or(|p| p < path)
}

#[derive(Default)]
pub struct Router {
    project: Project,
    test_dirs: HashSet<String>,
    previous: Option<String>,
}

impl Router {
    /// Whether `path` may come next: paths must arrive in strictly ascending byte order.
    pub fn in_order(&self, path: &str) -> bool {
        ascends(self.previous.as_deref(), path)
    }

    /// Checks and routes one file (excluded paths are ignored). Files must come in byte
    /// order of path ([`Router::in_order`]); a repeated path is an error.
    pub fn push(&mut self, file: RawFile) -> Result<(), ProjectError> {
        let RawFile { path: rel, bytes } = file;
        if path::is_excluded(&rel) {
            return Ok(());
        }
        self.project.files_loaded += 1;
        route_one(
            &mut self.project,
            &mut self.test_dirs,
            self.previous.as_deref(),
            &rel,
            bytes,
        )?;
        self.previous = Some(rel);
        Ok(())
    }

    /// The sources routed since the last call, to be finished elsewhere (see [`finish`]).
    pub fn take_sources(&mut self) -> Vec<SourceFile> {
        std::mem::take(&mut self.project.sources)
    }

    /// Number of sources not yet taken.
    pub fn pending_sources(&self) -> usize {
        self.project.sources.len()
    }

    /// The routed project (sources not taken, unfinished), test directories complete.
    pub fn finish(mut self) -> Project {
        self.project.test_directories = test_directory_rows(self.test_dirs);
        self.project
    }
}

/// Phase 2, the expensive part: both checksums and `<pgmi-meta>` of each source in
/// `sources`. Independent runs of sources may be finished on different threads. The error
/// is the run's first in path order.
pub fn finish(sources: &mut [SourceFile]) -> Result<(), ProjectError> {
    match finish_chunk(0, sources, Work::All) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Phase 3, over the finished project: duplicate `<pgmi-meta>` ids, then the
/// `_pgmi_source` CHECK constraints (which the original pgmi meets only at insert time, after
/// all scan errors — so they are reported last here too).
pub fn finalize(project: &Project) -> Result<(), ProjectError> {
    check_ids(project)?;
    for source in &project.sources {
        check_row(&source.path)?;
    }
    Ok(())
}

/// The first half of [`finalize`]: no `<pgmi-meta>` id is declared twice.
pub fn check_ids(project: &Project) -> Result<(), ProjectError> {
    meta::check_unique_ids(
        project
            .sources
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| (s.path.path.as_str(), m.id))),
    )
    .map_err(|e| ProjectError::DuplicateIds(Box::new(e)))
}

/// The second half of [`finalize`], for one source: the `_pgmi_source` CHECK constraints.
/// A loader that checks rows as they stream by keeps the first error and reports it after
/// [`check_ids`], as `finalize` would.
pub fn check_row(path: &SourcePath) -> Result<(), ProjectError> {
    path::check_source_row(path).map_err(ProjectError::Constraint)
}

fn route_one(
    project: &mut Project,
    test_dirs: &mut HashSet<String>,
    previous: Option<&str>,
    rel: &str,
    mut bytes: Vec<u8>,
) -> Result<(), ProjectError> {
    // The fixed caps first: everything below is linear in the path, and bounded by them.
    if let Err(limit) = path::check_limits(rel) {
        return Err(ProjectError::InvalidPath {
            path: format!("./{}", path::abbreviate(rel)),
            reason: limit.to_string(),
        });
    }
    let shown = format!("./{rel}");
    check_relative(rel, &shown)?;
    if previous == Some(rel) {
        return Err(invalid(&shown, "the path occurs twice"));
    }
    if path::normalize(&shown) != shown {
        return Err(invalid(
            &shown,
            "PostgreSQL-side pgmi would store it under a different name (it ends in a space or contains a backslash)",
        ));
    }

    // One leading BOM goes; content, checksums and metadata use the rest.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if let Err(dir) = path::check_dunder(&shown) {
        return Err(ProjectError::UnsupportedDirectory { dir, path: shown });
    }
    // `contains` on bytes is a vectorised search, several times faster than `position`
    // over the whole content; the offset is looked for only when there is one.
    if bytes.contains(&0) {
        let offset = bytes.iter().position(|&b| b == 0).unwrap_or_default();
        return Err(ProjectError::NulByte {
            path: shown,
            offset,
        });
    }
    let content = String::from_utf8(bytes).map_err(|e| ProjectError::InvalidUtf8 {
        path: shown.clone(),
        offset: e.utf8_error().valid_up_to(),
    })?;

    if path::is_test_path(&shown) {
        let directory = path::directory_of(&shown).to_owned();
        let filename = path::file_name_of(&shown).to_owned();
        if !test_dirs.contains(&directory) {
            test_dirs.insert(directory.clone());
        }
        // Non-SQL test files are validated (above) but stored nowhere: only SQL files run as tests.
        if path::is_sql_file(&filename) {
            let is_fixture = path::is_fixture(&filename);
            project.test_sources.push(TestSource {
                path: shown,
                directory,
                filename,
                content,
                is_fixture,
            });
        }
    } else {
        // Checksums and metadata are the expensive part; they run afterwards, in
        // parallel, see `finish_sources`.
        project.sources.push(SourceFile {
            checksum: String::new(),
            pgmi_checksum: String::new(),
            path: path::derive(&shown),
            content,
            metadata: None,
        });
    }
    Ok(())
}

/// Files per thread below which spreading the checksum and metadata work over threads
/// costs more than it saves (a thread start is ~20 µs; one 2 kB file takes ~8 µs).
const FILES_PER_THREAD: usize = 256;

/// How many threads to spread `items` over: one per `per_thread` items, at most `max` and
/// the machine's cores, at least one.
fn threads_for(items: usize, per_thread: usize, max: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, max)
        .min(items / per_thread)
        .max(1)
}

/// What [`finish_sources`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    All,
    Metadata,
    Checksums,
}

/// Computes both checksums and parses `<pgmi-meta>` (or one of the two, `work`) for every
/// source file, spread over the available cores: 85 ms of a 10,000-file (21 MB) load on one
/// core here. The work per file is independent and pure, so the threads share nothing but
/// the slice they split. Errors come back in path order.
fn finish_sources(sources: &mut [SourceFile], work: Work) -> Result<(), ProjectError> {
    let threads = threads_for(sources.len(), FILES_PER_THREAD, 8);
    let chunk = sources.len().div_ceil(threads).max(1);
    let errors: Vec<Option<(usize, ProjectError)>> = if threads == 1 {
        vec![finish_chunk(0, sources, work)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .chunks_mut(chunk)
                .enumerate()
                .map(|(i, part)| scope.spawn(move || finish_chunk(i * chunk, part, work)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(None))
                .collect()
        })
    };
    match errors.into_iter().flatten().min_by_key(|(index, _)| *index) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// The sequential work of [`finish_sources`] for one slice starting at `offset`; returns
/// the slice's first metadata error with its index.
fn finish_chunk(
    offset: usize,
    sources: &mut [SourceFile],
    work: Work,
) -> Option<(usize, ProjectError)> {
    for (i, source) in sources.iter_mut().enumerate() {
        let bytes = source.content.as_bytes();
        if work != Work::Metadata {
            source.checksum = checksum::raw(bytes);
            source.pgmi_checksum = checksum::normalized(bytes);
        }
        if work != Work::Checksums && path::is_sql_file(&source.path.name) {
            match meta::extract(&source.path.path, &source.content) {
                Ok(m) => source.metadata = m,
                Err(e) => return Some((offset + i, ProjectError::Metadata(Box::new(e)))),
            }
        }
    }
    None
}

/// Rejects paths no walk produces and no bundle reader passes on: empty, absolute, with
/// empty, `.` or `..` segments, or a NUL.
fn check_relative(rel: &str, shown: &str) -> Result<(), ProjectError> {
    if rel.is_empty() {
        return Err(invalid("./", "the path is empty"));
    }
    if rel.contains('\0') {
        return Err(invalid(shown, "the path contains a NUL character"));
    }
    if rel.starts_with('/') {
        return Err(invalid(shown, "the path must be relative"));
    }
    if rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid(
            shown,
            "the path has an empty, \".\" or \"..\" segment",
        ));
    }
    Ok(())
}

fn invalid(shown: &str, reason: &str) -> ProjectError {
    ProjectError::InvalidPath {
        path: shown.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Test directory rows: parent = nearest proper ancestor (cut at `/`) that is itself in the
/// set; depth = segments after the first dunder directory; ordered by depth, then path.
///
/// Linear in the total length of the paths: in byte order every directory comes after
/// its ancestors, and the directories between an ancestor and its descendant all lie
/// below that ancestor. So a stack of "open" directories, popped while its top is not a
/// prefix of the next one, always holds the next directory's nearest ancestor on top.
/// (Looking every ancestor prefix up in the set instead hashes each prefix: quadratic,
/// 1.9 s for one test file 100,000 directories deep.)
fn test_directory_rows(dirs: HashSet<String>) -> Vec<TestDirectory> {
    let mut sorted: Vec<String> = dirs.into_iter().collect();
    sorted.sort_unstable();
    let mut parents: Vec<Option<String>> = Vec::with_capacity(sorted.len());
    let mut open: Vec<usize> = Vec::new();
    for (i, dir) in sorted.iter().enumerate() {
        // Every directory ends in '/', so a prefix is an ancestor at a segment boundary.
        while open
            .last()
            .is_some_and(|&j| !dir.starts_with(sorted[j].as_str()))
        {
            open.pop();
        }
        parents.push(open.last().map(|&j| sorted[j].clone()));
        open.push(i);
    }
    let mut rows: Vec<TestDirectory> = sorted
        .into_iter()
        .zip(parents)
        .map(|(path, parent_path)| TestDirectory {
            depth: path::test_directory_depth(&path),
            path,
            parent_path,
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.depth.cmp(&b.depth).then_with(|| a.path.cmp(&b.path)));
    rows
}

#[cfg(test)]
mod tests;
