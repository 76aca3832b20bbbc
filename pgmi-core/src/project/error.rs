//! The one error type of project walking and building.
//!
//! Display texts name the file once, in `./` form, with the original pgmi's wording where it
//! has one (scripts may match it); [`ProjectError::hint`] adds what to do about it.

use std::io;
use std::path::PathBuf;

use crate::meta::{DuplicateIdError, MetaError};
use crate::path::ConstraintViolation;

/// What went wrong, coarsely: callers map this to exit codes and SQLSTATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The project root does not exist.
    NotFound,
    /// The project root is not a directory.
    NotADirectory,
    /// A symlink outside excluded directories.
    Symlink,
    /// A FIFO, socket or device file outside excluded directories.
    NotRegularFile,
    /// A file over the per-file cap.
    FileTooLarge,
    /// More files than the limit.
    TooManyFiles,
    /// A file containing a NUL byte.
    NulByte,
    /// A file that is not UTF-8.
    InvalidUtf8,
    /// A `__X__` directory other than `__test__`/`__tests__`.
    UnsupportedDirectory,
    /// A `<pgmi-meta>` problem.
    Metadata,
    /// Two files share a `<pgmi-meta>` id.
    DuplicateIds,
    /// A path pgmi cannot store (non-UTF-8 name, too deep, changed by normalisation, …).
    InvalidPath,
    /// An I/O error while walking or reading.
    Io,
}

/// Why a project could not be walked or built.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("project directory {} does not exist", root.display())]
    RootNotFound { root: PathBuf },

    #[error("project path {} is not a directory", root.display())]
    RootNotADirectory { root: PathBuf },

    #[error("refusing to read symlink {path} (pgmi does not follow symbolic links)")]
    Symlink { path: String },

    #[error("refusing to read {path}: it is a {what}, not a regular file")]
    NotRegularFile { path: String, what: &'static str },

    #[error(
        "file {path} is {size} bytes, exceeds {cap}-byte cap (override via PGMI_MAX_FILE_SIZE)"
    )]
    FileTooLarge { path: String, size: u64, cap: u64 },

    #[error("file {path} grew past the {cap}-byte cap while being read (override via PGMI_MAX_FILE_SIZE)")]
    FileGrew { path: String, cap: u64 },

    #[error("project has more than {limit} files")]
    TooManyFiles { limit: usize },

    #[error(
        "file {path} contains a NUL byte; it looks binary (first NUL at byte offset {offset})"
    )]
    NulByte { path: String, offset: usize },

    #[error("file {path} is not valid UTF-8; the first invalid byte is at offset {offset}")]
    InvalidUtf8 { path: String, offset: usize },

    #[error("unsupported directory \"{dir}\" in path {}; only __test__ and __tests__ are allowed", crate::path::go_quote(.path))]
    UnsupportedDirectory { dir: String, path: String },

    /// Display is the original pgmi's full text (`metadata error in ./x.sql (line N): …` plus
    /// its `Hint:` paragraph, or the numbered `invalid PGMI metadata in ./x.sql:` report).
    #[error("{0}")]
    Metadata(Box<MetaError>),

    #[error("{0}")]
    DuplicateIds(Box<DuplicateIdError>),

    #[error("file name {lossy} is not valid UTF-8")]
    NonUtf8Name { lossy: String },

    #[error("invalid file path {path}: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error("{0}")]
    Constraint(ConstraintViolation),

    #[error("{} while reading {}", source, path.as_deref().unwrap_or("the project"))]
    Io {
        path: Option<String>,
        source: io::Error,
    },
}

const SKIP_ADVICE: &str =
    "move it into a hidden directory (e.g. .assets/) or node_modules/ so pgmi skips it";

impl ProjectError {
    /// The coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProjectError::RootNotFound { .. } => ErrorKind::NotFound,
            ProjectError::RootNotADirectory { .. } => ErrorKind::NotADirectory,
            ProjectError::Symlink { .. } => ErrorKind::Symlink,
            ProjectError::NotRegularFile { .. } => ErrorKind::NotRegularFile,
            ProjectError::FileTooLarge { .. } | ProjectError::FileGrew { .. } => {
                ErrorKind::FileTooLarge
            }
            ProjectError::TooManyFiles { .. } => ErrorKind::TooManyFiles,
            ProjectError::NulByte { .. } => ErrorKind::NulByte,
            ProjectError::InvalidUtf8 { .. } => ErrorKind::InvalidUtf8,
            ProjectError::UnsupportedDirectory { .. } => ErrorKind::UnsupportedDirectory,
            ProjectError::Metadata(_) => ErrorKind::Metadata,
            ProjectError::DuplicateIds(_) => ErrorKind::DuplicateIds,
            ProjectError::NonUtf8Name { .. }
            | ProjectError::InvalidPath { .. }
            | ProjectError::Constraint(_) => ErrorKind::InvalidPath,
            ProjectError::Io { .. } => ErrorKind::Io,
        }
    }

    /// The offending file in `./` form, when there is exactly one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ProjectError::Symlink { path }
            | ProjectError::NotRegularFile { path, .. }
            | ProjectError::FileTooLarge { path, .. }
            | ProjectError::FileGrew { path, .. }
            | ProjectError::NulByte { path, .. }
            | ProjectError::InvalidUtf8 { path, .. }
            | ProjectError::UnsupportedDirectory { path, .. }
            | ProjectError::InvalidPath { path, .. } => Some(path),
            ProjectError::Metadata(e) => Some(&e.path),
            ProjectError::Constraint(v) => Some(&v.path),
            ProjectError::Io { path, .. } => path.as_deref(),
            ProjectError::RootNotFound { .. }
            | ProjectError::RootNotADirectory { .. }
            | ProjectError::TooManyFiles { .. }
            | ProjectError::DuplicateIds(_)
            | ProjectError::NonUtf8Name { .. } => None,
        }
    }

    /// Actionable advice for the user, kept out of `Display` — except for
    /// [`ProjectError::Metadata`], whose `Display` is the original pgmi's text and already ends
    /// with the same advice (use [`MetaError::reason`] when rendering message and hint apart).
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ProjectError::RootNotFound { .. } => {
                "check the project path; it must be the directory that holds deploy.sql".into()
            }
            ProjectError::RootNotADirectory { .. } => {
                "pass the project directory (the one holding deploy.sql), not a file".into()
            }
            ProjectError::Symlink { .. } => format!(
                "replace the link with a copy of its target, or {SKIP_ADVICE}"
            ),
            ProjectError::NotRegularFile { .. } => format!("remove it, or {SKIP_ADVICE}"),
            ProjectError::FileTooLarge { .. } | ProjectError::FileGrew { .. } => format!(
                "split the file, raise the cap (PGMI_MAX_FILE_SIZE=<bytes>), or {SKIP_ADVICE}"
            ),
            ProjectError::TooManyFiles { .. } => format!(
                "move generated or vendored files out of the project, or {SKIP_ADVICE}"
            ),
            ProjectError::NulByte { .. } => format!(
                "pgmi loads every file as text; {SKIP_ADVICE}"
            ),
            ProjectError::InvalidUtf8 { .. } => format!(
                "convert the file to UTF-8 (UTF-16 and Latin-1 are not supported), or {SKIP_ADVICE}"
            ),
            ProjectError::UnsupportedDirectory { .. } => {
                "rename the directory: only __test__/ and __tests__/ may use the __name__ form (they hold tests)".into()
            }
            ProjectError::Metadata(e) => return e.hint.clone(),
            ProjectError::DuplicateIds(_) => {
                "give each script its own id (generate one with `uuidgen`); copies of a script must get a new id".into()
            }
            ProjectError::NonUtf8Name { .. } => {
                format!("rename the file to a UTF-8 name, or {SKIP_ADVICE}")
            }
            ProjectError::InvalidPath { .. } | ProjectError::Constraint(_) => {
                "rename or move the file so its path is a plain relative path the session tables accept".into()
            }
            ProjectError::Io { .. } => "check that the file is readable by the current user".into(),
        })
    }
}
