//! Errors of bundle writing and reading: one variant per way a bundle can be refused, each
//! with a [`BundleErrorKind`] and a hint.

use super::PARAMETERS_ENTRY;
use crate::path::PathLimit;

/// The coarse category of a [`BundleError`]; one per distinct refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundleErrorKind {
    NotGzip,
    CorruptGzip,
    CorruptTar,
    AbsolutePath,
    ParentComponent,
    Link,
    NotRegular,
    DuplicatePath,
    FileTooLarge,
    TooManyFiles,
    BundleTooLarge,
    UnpackedTooLarge,
    InvalidParameters,
    InvalidPath,
    PathLimit,
    HeaderTooLarge,
    OutOfMemory,
    Stopped,
}

/// Why a bundle could not be written or read. Paths are shown as `./rel`, or quoted raw when
/// the name itself is the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is not gzip data (it does not start with the gzip magic bytes 1f 8b)")]
    NotGzip,
    #[error("the bundle's gzip stream is corrupt: {detail}")]
    CorruptGzip { detail: String },
    #[error("the bundle's tar archive is corrupt: {detail}")]
    CorruptTar { detail: String },
    #[error("bundle entry {path} has an absolute path")]
    AbsolutePath { path: String },
    #[error("bundle entry {path} has a \"..\" path component")]
    ParentComponent { path: String },
    #[error("bundle entry {path} is a {what}; pgmi loads regular files only")]
    Link { path: String, what: &'static str },
    #[error("bundle entry {path} is a {what}, not a regular file")]
    NotRegular { path: String, what: &'static str },
    #[error("bundle contains {path} more than once")]
    DuplicatePath { path: String },
    #[error("file {path} is {size} bytes, exceeds {cap}-byte cap")]
    FileTooLarge { path: String, size: u64, cap: u64 },
    #[error("bundle has more than {limit} files")]
    TooManyFiles { limit: usize },
    #[error("bundle is {size} bytes, exceeds the {limit}-byte limit for compressed bundles")]
    BundleTooLarge { size: u64, limit: u64 },
    #[error("bundle unpacks to more than {limit} bytes")]
    UnpackedTooLarge { limit: u64 },
    #[error("{PARAMETERS_ENTRY} is not a JSON array of [key, value] string pairs (error at line {line}, column {column})")]
    InvalidParameters { line: usize, column: usize },
    #[error("bundle entry {path} is not a valid project path: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("bundle entry {path} is refused: {limit}")]
    PathLimit { path: String, limit: PathLimit },
    #[error("the bundle has a {what} header of {size} bytes, over the {limit}-byte limit for archive headers")]
    HeaderTooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error(
        "out of memory while unpacking the bundle: {bytes} bytes for {what} could not be allocated"
    )]
    OutOfMemory { what: String, bytes: u64 },
    #[error("reading the bundle was stopped")]
    Stopped,
}

impl BundleError {
    /// The category of this error.
    pub fn kind(&self) -> BundleErrorKind {
        match self {
            BundleError::NotGzip => BundleErrorKind::NotGzip,
            BundleError::CorruptGzip { .. } => BundleErrorKind::CorruptGzip,
            BundleError::CorruptTar { .. } => BundleErrorKind::CorruptTar,
            BundleError::AbsolutePath { .. } => BundleErrorKind::AbsolutePath,
            BundleError::ParentComponent { .. } => BundleErrorKind::ParentComponent,
            BundleError::Link { .. } => BundleErrorKind::Link,
            BundleError::NotRegular { .. } => BundleErrorKind::NotRegular,
            BundleError::DuplicatePath { .. } => BundleErrorKind::DuplicatePath,
            BundleError::FileTooLarge { .. } => BundleErrorKind::FileTooLarge,
            BundleError::TooManyFiles { .. } => BundleErrorKind::TooManyFiles,
            BundleError::BundleTooLarge { .. } => BundleErrorKind::BundleTooLarge,
            BundleError::UnpackedTooLarge { .. } => BundleErrorKind::UnpackedTooLarge,
            BundleError::InvalidParameters { .. } => BundleErrorKind::InvalidParameters,
            BundleError::InvalidPath { .. } => BundleErrorKind::InvalidPath,
            BundleError::PathLimit { .. } => BundleErrorKind::PathLimit,
            BundleError::HeaderTooLarge { .. } => BundleErrorKind::HeaderTooLarge,
            BundleError::OutOfMemory { .. } => BundleErrorKind::OutOfMemory,
            BundleError::Stopped => BundleErrorKind::Stopped,
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            BundleError::NotGzip => {
                "upload a gzip-compressed tar of the project (pgmi-upload builds one; by hand: tar czf bundle.tgz -C <project> .)".into()
            }
            BundleError::CorruptGzip { .. } | BundleError::CorruptTar { .. } => {
                "the upload was damaged or truncated; build the bundle again and re-send it".into()
            }
            BundleError::AbsolutePath { .. } | BundleError::ParentComponent { .. } => {
                "create the archive from inside the project directory (tar czf bundle.tgz -C <project> .) so every name is relative".into()
            }
            BundleError::Link { .. } => {
                "replace the link with a copy of its target before packing (tar --dereference), or leave it out".into()
            }
            BundleError::NotRegular { .. } => "leave special files out of the archive".into(),
            BundleError::DuplicatePath { .. } => {
                "each path may appear once; rebuild the archive instead of appending to it".into()
            }
            BundleError::FileTooLarge { .. } => {
                "split the file, or raise the per-file limit".into()
            }
            BundleError::TooManyFiles { .. } => {
                "move generated or vendored files out of the project, or raise the file-count limit".into()
            }
            BundleError::BundleTooLarge { .. } => {
                "shrink the project (leave build artefacts out), or raise the bundle-size limit".into()
            }
            BundleError::UnpackedTooLarge { .. } => {
                "the archive expands beyond the unpacked-size limit; shrink the project or raise the limit".into()
            }
            BundleError::InvalidParameters { .. } => {
                format!("{PARAMETERS_ENTRY} must look like [[\"key\", \"value\"], ...]; let pgmi-upload write it")
            }
            BundleError::InvalidPath { .. } => {
                "rename the file to a plain relative path (no empty, \".\" or \"..\" segments, UTF-8)".into()
            }
            BundleError::PathLimit { .. } => {
                "shorten the path or flatten the directory tree; these limits are fixed and protect the server".into()
            }
            BundleError::HeaderTooLarge { .. } => {
                "build the bundle with pgmi-upload or plain tar; no project needs archive headers this large".into()
            }
            BundleError::OutOfMemory { .. } => {
                "the server is short of memory; retry later, or load a smaller project (lower pgmi_loader.max_unpacked_size to fail earlier)".into()
            }
            BundleError::Stopped => "the load was cancelled; nothing was loaded".into(),
        })
    }
}
